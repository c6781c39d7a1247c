// Package control is the control container's server: the node's settings
// API (/run/api.sock, mounted into every host container) served on a TCP
// port over mutual TLS, so that a node can be managed remotely without SSH
// and without a cloud agent (Bottlerocket's control container needs AWS
// SSM). Every client must present a certificate signed by the CA of the
// container's user data; the exec WebSocket passes through too.
package control

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"time"
)

// DefaultListen is the address the API is served on: port 8443 of the
// node (host containers share the host's network).
const DefaultListen = ":8443"

// Config is the control container's user data, a JSON object (base64 in
// settings.host-containers.control.user-data).
type Config struct {
	// Listen is the TCP address (default ":8443").
	Listen string `json:"listen"`
	// ServerCertificate and ServerKey are PEM: the node's certificate
	// (chain) and key.
	ServerCertificate string `json:"server-certificate"`
	ServerKey         string `json:"server-key"`
	// ClientCA is PEM: the CA certificates that sign the clients'.
	ClientCA string `json:"client-ca"`
}

// ParseConfig reads the user data; every error names the key.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("control user data: %w", err)
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return nil, fmt.Errorf("control user data: listen: %w", err)
	}
	var missing []string
	for k, v := range map[string]string{"server-certificate": c.ServerCertificate, "server-key": c.ServerKey, "client-ca": c.ClientCA} {
		if strings.TrimSpace(v) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("control user data: %s must be set (PEM)", strings.Join(slices.Sorted(slices.Values(missing)), ", "))
	}
	if _, err := c.TLS(); err != nil {
		return nil, err
	}
	return &c, nil
}

// TLS is the server's TLS configuration: TLS 1.2 or later, and a client
// certificate signed by ClientCA required.
func (c *Config) TLS() (*tls.Config, error) {
	cert, err := tls.X509KeyPair([]byte(c.ServerCertificate), []byte(c.ServerKey))
	if err != nil {
		return nil, fmt.Errorf("control user data: server-certificate and server-key: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	rest := []byte(c.ClientCA)
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		ca, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("control user data: client-ca: %w", err)
		}
		pool.AddCert(ca)
		n++
	}
	if n == 0 {
		return nil, errors.New("control user data: client-ca: no PEM certificate")
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// Handler forwards every request, WebSocket upgrades included, to the API
// on socket.
func Handler(socket string, log *slog.Logger) http.Handler {
	target, _ := url.Parse("http://localhost")
	p := httputil.NewSingleHostReverseProxy(target)
	p.Transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		log.Warn("the API did not answer", "method", r.Method, "uri", r.URL.RequestURI(), "error", err)
		http.Error(w, "the node's API did not answer: "+err.Error(), http.StatusBadGateway)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := "?"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			who = r.TLS.PeerCertificates[0].Subject.String()
		}
		log.Info("request", "client", who, "method", r.Method, "uri", r.URL.RequestURI())
		p.ServeHTTP(w, r)
	})
}

// Serve serves the API on c.Listen until ctx ends.
func Serve(ctx context.Context, c *Config, socket string, log *slog.Logger, ready func(addr net.Addr)) error {
	tc, err := c.TLS()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Listen, err)
	}
	srv := &http.Server{Handler: Handler(socket, log), TLSConfig: tc, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}
}
