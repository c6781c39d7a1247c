package applier

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gantry-os/gantry/internal/settings/render"
	"github.com/gantry-os/gantry/pkg/apiclient"
	"github.com/gantry-os/gantry/pkg/model"
)

// APISource reads what the applier needs through the settings API, for the
// standalone settings-applier.
type APISource struct {
	Client *apiclient.Client
}

func (s APISource) get(ctx context.Context, uri string, v any) error {
	body, err := s.Client.Raw(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s: %w", uri, err)
	}
	return nil
}

// RenderContext implements Source.
func (s APISource) RenderContext(ctx context.Context) (render.Context, error) {
	body, err := s.Client.Raw(ctx, http.MethodGet, "/?prefix=settings", nil)
	if err != nil {
		return nil, err
	}
	rc, err := DecodeContext(body)
	if err != nil {
		return nil, err
	}
	osBody, err := s.Client.Raw(ctx, http.MethodGet, "/os", nil)
	if err != nil {
		return nil, err
	}
	osv, err := model.DecodeJSON(osBody)
	if err != nil {
		return nil, fmt.Errorf("decode /os: %w", err)
	}
	if rc["settings"] == nil {
		rc["settings"] = map[string]any{}
	}
	rc["os"] = osv
	return rc, nil
}

// AffectedServices implements Source.
func (s APISource) AffectedServices(ctx context.Context, keys []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(keys) == 0 {
		return out, nil
	}
	err := s.get(ctx, "/metadata/affected-services?keys="+url.QueryEscape(strings.Join(keys, ",")), &out)
	return out, err
}

// Services implements Source.
func (s APISource) Services(ctx context.Context) (map[string]model.Service, error) {
	out := map[string]model.Service{}
	return out, s.get(ctx, "/services", &out)
}

// ConfigFiles implements Source.
func (s APISource) ConfigFiles(ctx context.Context) (map[string]model.ConfigurationFile, error) {
	out := map[string]model.ConfigurationFile{}
	return out, s.get(ctx, "/configuration-files", &out)
}
