// Package apiserver owns Gantry's settings API: the HTTP routes (compatible
// with Bottlerocket's), their status codes, input validation through the
// model, transactions over the datastore, the Unix socket listener and the
// hand-off of committed keys to the settings applier.
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/internal/containers/exec"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gantry-os/gantry/internal/settings/applier"
	"github.com/gantry-os/gantry/internal/update/updateapi"
	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/model"
	"github.com/gantry-os/gantry/pkg/osrelease"
)

// MaxBodyBytes bounds request bodies.
const MaxBodyBytes = 2 << 20

// DefaultTx is the transaction used when a request names none.
const DefaultTx = "default"

// Config holds what a Server needs.
type Config struct {
	Store   *datastore.Store
	Model   *model.Model
	Release osrelease.Release
	Applier *applier.Applier            // nil: apply is a no-op (logged)
	Updates *updateapi.Manager          // nil: the update routes answer 503
	Reboot  func(context.Context) error // nil: /actions/reboot answers 503
	// Containers reports the host and bootstrap containers' status for GET
	// /containers/status (nil: the route answers 503).
	Containers func() (any, error)
	// Exec starts commands in host containers for GET /exec (nil: 503).
	Exec   exec.Execer
	Logger *slog.Logger
}

// Server serves the settings API.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux

	applyMu sync.Mutex // one apply at a time, so restarts happen in commit order

	cacheMu sync.Mutex
	cache   map[string]cachedBody // response bodies of live reads, by route
}

type cachedBody struct {
	gen  uint64
	body []byte
}

// New builds a Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	s := &Server{cfg: cfg, log: cfg.Logger, cache: map[string]cachedBody{}}
	s.mux = s.routes()
	return s
}

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler { return s }

// ServeHTTP implements http.Handler: it bounds the body and dispatches.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	}
	s.mux.ServeHTTP(w, r)
}

// Serve serves the API on ln until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// cached returns the body for a live read, built by build unless the live
// data has not changed since it was last built.
func (s *Server) cached(name string, build func() ([]byte, error)) ([]byte, error) {
	gen := s.cfg.Store.Generation()
	s.cacheMu.Lock()
	c, ok := s.cache[name]
	s.cacheMu.Unlock()
	if ok && c.gen == gen {
		return c.body, nil
	}
	body, err := build()
	if err != nil {
		return nil, err
	}
	s.cacheMu.Lock()
	s.cache[name] = cachedBody{gen: gen, body: body}
	s.cacheMu.Unlock()
	return body, nil
}
