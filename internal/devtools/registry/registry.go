// Package registry runs a real OCI registry (CNCF Distribution, Debian's
// docker-registry) on the host's loopback for tests and `gantry run`, and
// publishes OCI image layouts (gantry container build's output) to it.
// Guests on QEMU's user network reach it at 10.0.2.2:Port.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// DefaultBinary is Debian's name for Distribution's registry.
const DefaultBinary = "docker-registry"

// Options configure Start.
type Options struct {
	// Binary is the registry program (default DefaultBinary).
	Binary string
	// Dir holds the registry's storage, its configuration and its log; a
	// later registry on the same Dir serves what was pushed before.
	Dir string
	// Port on 127.0.0.1 (0: a free one).
	Port int
	// Ready bounds how long Start waits for the registry to answer
	// (default 20 s).
	Ready time.Duration
}

// Registry is a running registry.
type Registry struct {
	// Host is 127.0.0.1:PORT, the registry's name for pushes from the host.
	Host string
	Port int
	// Log is the registry's log file.
	Log string

	cmd    *exec.Cmd
	cancel context.CancelFunc
	logf   *os.File
	done   chan struct{}
}

// Start starts a registry and waits until it answers GET /v2/. Stop ends
// it; ctx bounds only the start.
func Start(ctx context.Context, o Options) (_ *Registry, err error) {
	if o.Binary == "" {
		o.Binary = DefaultBinary
	}
	if o.Ready == 0 {
		o.Ready = 20 * time.Second
	}
	bin, err := exec.LookPath(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("registry: %w (Debian package docker-registry)", err)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	port := o.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	host := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// A port something else serves would answer the readiness check for
	// a registry that could not listen.
	l, err := net.Listen("tcp", host)
	if err != nil {
		return nil, fmt.Errorf("registry: port %d: %w", port, err)
	}
	l.Close()
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(o.Dir, "storage"), host)
	cfgPath := filepath.Join(o.Dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	r := &Registry{Host: host, Port: port, Log: filepath.Join(o.Dir, "registry.log"), done: make(chan struct{})}
	if r.logf, err = os.Create(r.Log); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.cmd = exec.CommandContext(rctx, bin, "serve", cfgPath)
	r.cmd.Stdout, r.cmd.Stderr = r.logf, r.logf
	if err := r.cmd.Start(); err != nil {
		cancel()
		r.logf.Close()
		return nil, fmt.Errorf("registry: start %s: %w", bin, err)
	}
	go func() {
		_ = r.cmd.Wait()
		close(r.done)
	}()
	defer func() {
		if err != nil {
			r.Stop()
		}
	}()
	if err := r.waitReady(ctx, o.Ready); err != nil {
		b, _ := os.ReadFile(r.Log)
		return nil, fmt.Errorf("registry on %s: %w\n%s", host, err, b)
	}
	return r, nil
}

// waitReady polls GET /v2/ until it answers 200, the registry exits, or
// the time is up.
func (r *Registry) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Host+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		select {
		case <-r.done:
			return errors.New("the registry exited")
		case <-ctx.Done():
			return fmt.Errorf("did not answer: %w", errors.Join(err, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop ends the registry and waits for it.
func (r *Registry) Stop() {
	if r == nil || r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.logf.Close()
}

// FreePort returns a port on 127.0.0.1 that nothing listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
