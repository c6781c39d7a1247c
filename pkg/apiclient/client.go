// Package apiclient owns the client side of Gantry's settings API: an HTTP
// client over the Unix socket, and the `apiclient` command line (raw
// requests, get, set, apply) with Bottlerocket's flags and semantics.
package apiclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// LaunchTx is the transaction that holds a node's first-boot settings
// (storewolf's defaults, early-boot-config's user data, sundog's generated
// values) until settings-committer commits them.
const LaunchTx = "gantry-launch"

// DefaultSocketPath is where the API listens on a node.
const DefaultSocketPath = "/run/api.sock"

// Client talks to the API over its Unix socket, or over HTTPS with a
// client certificate to a node's control container (NewTLS).
type Client struct {
	where string // the socket or host, for messages
	// base is the URL requests go to: http://localhost on the socket.
	base string
	http *http.Client
}

// New returns a client for the socket at path.
func New(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Client{where: path, base: "http://localhost", http: &http.Client{Transport: tr}}
}

// NewTLS returns a client for an API endpoint served over TLS, such as the
// control container's (https://node:8443), authenticating with the TLS
// configuration's client certificate.
func NewTLS(endpoint string, cfg *tls.Config) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("endpoint %q: want https://HOST[:PORT]", endpoint)
	}
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second,
		ForceAttemptHTTP2: false}
	return &Client{where: u.Host, base: "https://" + u.Host, http: &http.Client{Transport: tr}}, nil
}

// StatusError is a response with a non-2xx status.
type StatusError struct {
	Code   int
	Method string
	URI    string
	Body   string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("Status %d when %sing %s: %s", e.Code, e.Method, e.URI, strings.TrimSpace(e.Body))
}

// Do sends one request and returns the status and body, whatever the status.
func (c *Client) Do(ctx context.Context, method, uri string, body []byte) (int, []byte, error) {
	if !strings.HasPrefix(uri, "/") {
		return 0, nil, fmt.Errorf("URI %q must start with /", uri)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, strings.ToUpper(method), c.base+uri, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s via %s: %w", req.Method, uri, c.where, unwrapURLError(err))
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read response of %s %s: %w", req.Method, uri, err)
	}
	return resp.StatusCode, out, nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(interface{ Unwrap() error }); ok {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// Raw sends a request and returns the body, or a StatusError for a non-2xx
// status.
func (c *Client) Raw(ctx context.Context, method, uri string, body []byte) ([]byte, error) {
	code, out, err := c.Do(ctx, method, uri, body)
	if err != nil {
		return nil, err
	}
	if code < 200 || code > 299 {
		return nil, &StatusError{Code: code, Method: strings.ToUpper(method), URI: uri, Body: string(out)}
	}
	return out, nil
}

// TxName returns a fresh transaction name with the given prefix.
func TxName(prefix string) string {
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 16)
	rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return prefix + "-" + string(b)
}
