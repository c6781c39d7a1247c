package earlyboot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/pkg/apiclient"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/gantry-os/gantry/internal/settings/userdata"
	"github.com/gantry-os/gantry/pkg/model"
)

// API is the part of the settings API client Run needs; *apiclient.Client
// implements it.
type API interface {
	Raw(ctx context.Context, method, uri string, body []byte) ([]byte, error)
}

// Config is what Run needs.
type Config struct {
	API       API
	Model     *model.Model
	Providers []Provider // in precedence order: later ones win
	// Marker is the file whose existence means early-boot-config already
	// ran; "" means no marker (always run, never record).
	Marker string
	// Tx is the transaction to PATCH; "" means apiclient.LaunchTx.
	Tx     string
	Logger *slog.Logger // nil discards logs
}

// Result says what Run did.
type Result struct {
	// Skipped is true when the marker existed and nothing was done.
	Skipped bool
	// Sources lists, in order, where user data with settings was found.
	Sources []string
	// Settings is the merged settings object that was sent; nil if none.
	Settings map[string]any
}

// ProviderError is a failure of one provider: fetching its data, or data
// that does not parse or validate.
type ProviderError struct {
	Provider string
	Err      error
}

func (e *ProviderError) Error() string { return "provider " + e.Provider + ": " + e.Err.Error() }

func (e *ProviderError) Unwrap() error { return e.Err }

// Run is early-boot-config. Unless the marker exists, it fetches every
// provider (concurrently), parses and validates each one's user data,
// deep-merges them in order, validates the merge, sends it in one PATCH to
// the launch transaction, and then writes the marker. Any problem aborts the
// run before anything is sent, naming the provider and, for bad user data,
// the source, line and key: nothing is ever half-applied, and the marker is
// written only after the settings were accepted.
func Run(ctx context.Context, cfg Config) (Result, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	tx := cfg.Tx
	if tx == "" {
		tx = apiclient.LaunchTx
	}
	if cfg.API == nil || cfg.Model == nil {
		return Result{}, errors.New("early-boot-config: no API client or settings model configured")
	}
	if cfg.Marker != "" {
		_, err := os.Stat(cfg.Marker)
		switch {
		case err == nil:
			log.Info("user data already applied at an earlier boot; nothing to do", "marker", cfg.Marker)
			return Result{Skipped: true}, nil
		case !errors.Is(err, fs.ErrNotExist):
			return Result{}, fmt.Errorf("check marker: %w", err)
		}
	}

	raw, err := fetchAll(ctx, cfg.Providers)
	if err != nil {
		return Result{}, fmt.Errorf("fetch user data; nothing was sent: %w", err)
	}

	var (
		docs []*userdata.Document
		errs []error
		res  Result
	)
	for i, p := range cfg.Providers {
		src := sourceOf(p)
		if raw[i] == nil {
			log.Info("no user data", "provider", p.Name(), "source", src)
			continue
		}
		doc, err := userdata.Parse(src, raw[i])
		if err == nil {
			err = doc.Validate(cfg.Model)
		}
		if err != nil {
			errs = append(errs, &ProviderError{Provider: p.Name(), Err: err})
			continue
		}
		if doc.Settings == nil {
			log.Info("user data has no settings table", "provider", p.Name(), "source", src)
			continue
		}
		log.Info("found user data", "provider", p.Name(), "source", src, "bytes", len(raw[i]))
		docs = append(docs, doc)
		res.Sources = append(res.Sources, src)
	}
	if len(errs) > 0 {
		return Result{}, fmt.Errorf("invalid user data; nothing was sent: %w", errors.Join(errs...))
	}
	merged := userdata.Merge(docs...)
	if err := userdata.Check(cfg.Model, merged, docs...); err != nil {
		return Result{}, fmt.Errorf("user data is invalid once merged; nothing was sent: %w", err)
	}

	if len(merged) == 0 {
		log.Info("no settings in any user data; nothing to send")
	} else {
		body, err := json.Marshal(merged)
		if err != nil {
			return Result{}, fmt.Errorf("encode user data: %w", err)
		}
		uri := "/settings?tx=" + url.QueryEscape(tx)
		if _, err := cfg.API.Raw(ctx, http.MethodPatch, uri, body); err != nil {
			return Result{}, fmt.Errorf("send user data to transaction %s: %w", tx, err)
		}
		res.Settings = merged
		log.Info("sent user data", "tx", tx, "sources", len(docs), "bytes", len(body))
	}

	if cfg.Marker != "" {
		if err := writeMarker(cfg.Marker); err != nil {
			return res, fmt.Errorf("user data was sent, but recording that failed: %w", err)
		}
	}
	return res, nil
}

// fetchAll runs every provider concurrently and returns their data in
// provider order, or every provider's failure.
func fetchAll(ctx context.Context, providers []Provider) ([][]byte, error) {
	data := make([][]byte, len(providers))
	errs := make([]error, len(providers))
	var wg sync.WaitGroup
	for i, p := range providers {
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					errs[i] = &ProviderError{Provider: p.Name(), Err: fmt.Errorf("panic: %v", r)}
				}
			}()
			b, err := p.Fetch(ctx)
			if err != nil {
				errs[i] = &ProviderError{Provider: p.Name(), Err: err}
				return
			}
			data[i] = b
		})
	}
	wg.Wait()
	return data, errors.Join(errs...)
}

// writeMarker creates the marker file atomically and durably: a temporary
// file is written and fsynced, renamed into place, and the directory is
// fsynced.
func writeMarker(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create marker directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create marker: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write marker %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write marker %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write marker %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync marker directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync marker directory: %w", err)
	}
	return nil
}
