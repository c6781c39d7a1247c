package apiclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/gantry-os/gantry/internal/cli"
	api "github.com/gantry-os/gantry/pkg/apiclient"
)

// remoteFlags reach a node's API through its control container instead of
// the local socket: HTTPS with a client certificate.
type remoteFlags struct {
	endpoint, cert, key, ca string
}

func (f *remoteFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.endpoint, "endpoint", "", "the API over mutual TLS, such as the control container's https://NODE:8443, instead of --socket-path")
	fs.StringVar(&f.cert, "tls-cert", "", "client certificate (PEM) for --endpoint")
	fs.StringVar(&f.key, "tls-key", "", "client key (PEM) for --endpoint")
	fs.StringVar(&f.ca, "tls-ca", "", "CA certificates (PEM) that sign the node's certificate (default: the system's)")
}

// client is the TLS client the flags ask for, or nil for the socket.
func (f *remoteFlags) client() (*api.Client, error) {
	if f.endpoint == "" {
		if f.cert != "" || f.key != "" || f.ca != "" {
			return nil, cli.UsageError{Err: errors.New("--tls-cert, --tls-key and --tls-ca need --endpoint")}
		}
		return nil, nil
	}
	if f.cert == "" || f.key == "" {
		return nil, cli.UsageError{Err: errors.New("--endpoint needs --tls-cert and --tls-key: the node requires a client certificate")}
	}
	pair, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert and --tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if f.ca != "" {
		b, err := os.ReadFile(f.ca)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--tls-ca: no PEM certificate in %s", f.ca)
		}
		cfg.RootCAs = pool
	}
	c, err := api.NewTLS(f.endpoint, cfg)
	if err != nil {
		return nil, cli.UsageError{Err: err}
	}
	return c, nil
}
