package apiserver

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gantry-os/gantry/internal/settings/applier"
	"github.com/gantry-os/gantry/internal/settings/render"
	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/model"
)

// storeSource gives the applier the datastore's live data, optionally with
// a pending transaction laid over it (for plans).
type storeSource struct {
	s       *Server
	overlay string // pending transaction to lay over live settings, or ""
}

func (src storeSource) RenderContext(ctx context.Context) (render.Context, error) {
	pairs, err := src.s.cfg.Store.GetPrefix(ctx, datastore.Live, "settings.")
	if err != nil {
		return nil, err
	}
	if src.overlay != "" {
		pending, err := src.s.cfg.Store.GetPrefix(ctx, datastore.Pending(src.overlay), "settings.")
		if err != nil {
			return nil, err
		}
		for k, v := range pending {
			pairs[k] = v
		}
	}
	tree, err := datastore.Unflatten(pairs, 1)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(map[string]any{"settings": tree, "os": src.s.cfg.Release})
	if err != nil {
		return nil, err
	}
	return applier.DecodeContext(body)
}

func (src storeSource) AffectedServices(ctx context.Context, keys []string) (map[string][]string, error) {
	md := datastore.MustKey(datastore.MetaKey, "affected-services")
	out := map[string][]string{}
	for _, name := range keys {
		k, err := datastore.ParseKey(datastore.DataKey, name)
		if err != nil {
			return nil, err
		}
		v, err := src.s.cfg.Store.GetMetadata(ctx, md, k)
		if err != nil || v == nil {
			if err != nil {
				return nil, err
			}
			continue
		}
		var svcs []string
		if err := json.Unmarshal(v, &svcs); err != nil {
			return nil, fmt.Errorf("affected-services of %s is not a list of names: %w", name, err)
		}
		out[name] = svcs
	}
	return out, nil
}

// section decodes the live records under prefix into out.
func (src storeSource) section(ctx context.Context, prefix string, out any) error {
	pairs, err := src.s.cfg.Store.GetPrefix(ctx, datastore.Live, prefix+".")
	if err != nil {
		return err
	}
	tree, err := datastore.Unflatten(pairs, 1)
	if err != nil {
		return err
	}
	b, err := json.Marshal(tree)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode %s: %w", prefix, err)
	}
	return nil
}

func (src storeSource) Services(ctx context.Context) (map[string]model.Service, error) {
	out := map[string]model.Service{}
	return out, src.section(ctx, "services", &out)
}

func (src storeSource) ConfigFiles(ctx context.Context) (map[string]model.ConfigurationFile, error) {
	out := map[string]model.ConfigurationFile{}
	return out, src.section(ctx, "configuration-files", &out)
}
