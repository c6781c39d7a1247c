package earlyboot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantry-os/gantry/internal/settings/userdata"
)

// IMDS defaults.
const (
	DefaultIMDSURL      = "http://169.254.169.254"
	DefaultIMDSTokenTTL = 6 * time.Hour // the protocol's maximum, 21600 s
	DefaultIMDSTimeout  = 2 * time.Second
	DefaultIMDSAttempts = 5
	DefaultIMDSBackoff  = 250 * time.Millisecond

	imdsTokenPath    = "/latest/api/token"
	imdsUserDataPath = "/latest/user-data"
	imdsTTLHeader    = "X-aws-ec2-metadata-token-ttl-seconds"
	imdsTokenHeader  = "X-aws-ec2-metadata-token"
	imdsMaxBackoff   = 4 * time.Second
)

// IMDSClient is an AWS instance metadata service (IMDSv2) client. It gets a
// session token with PUT /latest/api/token and sends it with every GET. The
// token is cached until shortly before its TTL runs out; a 401 (the token
// expired or was revoked) fetches a new token once and retries. Each attempt
// has a timeout, and connection errors and 5xx answers are retried a bounded
// number of times with exponential backoff. Zero fields take the defaults.
// It is safe for concurrent use.
type IMDSClient struct {
	BaseURL  string        // DefaultIMDSURL when empty
	TokenTTL time.Duration // whole seconds, 1 s to 6 h; DefaultIMDSTokenTTL when 0
	Timeout  time.Duration // per attempt; DefaultIMDSTimeout when 0
	Attempts int           // per request; DefaultIMDSAttempts when 0
	Backoff  time.Duration // before the first retry, then doubling; DefaultIMDSBackoff when 0
	// HTTP sends the requests; nil means a client that never uses a proxy
	// (IMDS is link-local).
	HTTP *http.Client
	// Now is the clock the token cache uses; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	token   string
	refresh time.Time // when the cached token stops being used
	client  *http.Client
}

// NewIMDSClient returns a client for the service at baseURL ("" for the
// default).
func NewIMDSClient(baseURL string) *IMDSClient { return &IMDSClient{BaseURL: baseURL} }

func (c *IMDSClient) baseURL() string {
	if c.BaseURL == "" {
		return DefaultIMDSURL
	}
	return strings.TrimRight(c.BaseURL, "/")
}

func (c *IMDSClient) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *IMDSClient) ttlSeconds() int {
	ttl := c.TokenTTL
	if ttl == 0 {
		ttl = DefaultIMDSTokenTTL
	}
	return min(max(int(ttl/time.Second), 1), 21600)
}

func (c *IMDSClient) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == nil {
		c.client = &http.Client{Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: c.timeout()}).DialContext,
			ResponseHeaderTimeout: c.timeout(),
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       30 * time.Second,
		}}
	}
	return c.client
}

func (c *IMDSClient) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultIMDSTimeout
}

// Get reads a metadata path such as /latest/user-data. found is false when
// the service answers 404.
func (c *IMDSClient) Get(ctx context.Context, path string) (body []byte, found bool, err error) {
	tok, err := c.sessionToken(ctx, "")
	if err != nil {
		return nil, false, err
	}
	status, body, err := c.send(ctx, http.MethodGet, path, imdsTokenHeader, tok)
	if err != nil {
		return nil, false, err
	}
	if status == http.StatusUnauthorized {
		// The token expired or was revoked: get a new one, once.
		if tok, err = c.sessionToken(ctx, tok); err != nil {
			return nil, false, err
		}
		if status, body, err = c.send(ctx, http.MethodGet, path, imdsTokenHeader, tok); err != nil {
			return nil, false, err
		}
	}
	switch {
	case status == http.StatusOK:
		return body, true, nil
	case status == http.StatusNotFound:
		return nil, false, nil
	case status == http.StatusUnauthorized:
		return nil, false, fmt.Errorf("IMDS GET %s: 401 Unauthorized even with a new session token", path)
	default:
		return nil, false, fmt.Errorf("IMDS GET %s: status %d: %s", path, status, snippet(body))
	}
}

// UserData returns the instance's user data, or nil when it has none.
func (c *IMDSClient) UserData(ctx context.Context) ([]byte, error) {
	body, found, err := c.Get(ctx, imdsUserDataPath)
	if err != nil || !found {
		return nil, err
	}
	if body == nil {
		body = []byte{}
	}
	return body, nil
}

// sessionToken returns the cached token, or fetches a new one when there is
// none, it is about to expire, or it is stale (the one a 401 refused).
func (c *IMDSClient) sessionToken(ctx context.Context, stale string) (string, error) {
	c.mu.Lock()
	tok, refresh := c.token, c.refresh
	c.mu.Unlock()
	if tok != "" && tok != stale && c.now().Before(refresh) {
		return tok, nil
	}
	ttl := c.ttlSeconds()
	issued := c.now()
	status, body, err := c.send(ctx, http.MethodPut, imdsTokenPath, imdsTTLHeader, strconv.Itoa(ttl))
	if err != nil {
		return "", fmt.Errorf("IMDS session token: %w", err)
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("IMDS session token: PUT %s: status %d: %s", imdsTokenPath, status, snippet(body))
	}
	tok = strings.TrimSpace(string(body))
	if tok == "" {
		return "", errors.New("IMDS session token: empty token")
	}
	life := time.Duration(ttl) * time.Second
	// Stop using the token a little before it expires: a tenth of its life,
	// at most a minute.
	c.mu.Lock()
	c.token, c.refresh = tok, issued.Add(life-min(life/10, time.Minute))
	c.mu.Unlock()
	return tok, nil
}

// send makes one request, retrying connection errors and 5xx answers, and
// returns the final status and body.
func (c *IMDSClient) send(ctx context.Context, method, path, header, value string) (int, []byte, error) {
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = DefaultIMDSAttempts
	}
	wait := c.Backoff
	if wait <= 0 {
		wait = DefaultIMDSBackoff
	}
	var lastErr error
	for attempt := 1; ; attempt++ {
		status, body, retry, err := c.once(ctx, method, path, header, value)
		switch {
		case err == nil && status < 500:
			return status, body, nil
		case err == nil:
			lastErr = fmt.Errorf("status %d: %s", status, snippet(body))
		case !retry:
			return 0, nil, err
		default:
			lastErr = err
		}
		if attempt >= attempts {
			return 0, nil, fmt.Errorf("IMDS %s %s: giving up after %d attempts: %w", method, path, attempts, lastErr)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, nil, fmt.Errorf("IMDS %s %s: %w (last error: %v)", method, path, ctx.Err(), lastErr)
		case <-t.C:
		}
		wait = min(wait*2, imdsMaxBackoff)
	}
}

// once makes a single attempt; retry says whether a failure is worth
// another.
func (c *IMDSClient) once(ctx context.Context, method, path, header, value string) (status int, body []byte, retry bool, err error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, false, fmt.Errorf("IMDS %s %s: %w", method, path, err)
	}
	actx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(actx, method, c.baseURL()+path, nil)
	if err != nil {
		return 0, nil, false, fmt.Errorf("IMDS %s %s: %w", method, path, err)
	}
	req.Header.Set(header, value)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return 0, nil, ctx.Err() == nil, fmt.Errorf("IMDS %s %s: %w", method, c.baseURL()+path, err)
	}
	defer resp.Body.Close()
	body, err = readLimited(resp.Body, userdata.MaxSize)
	if err != nil {
		var tl errTooLarge
		return 0, nil, !errors.As(err, &tl) && ctx.Err() == nil, fmt.Errorf("IMDS %s %s: %w", method, path, err)
	}
	return resp.StatusCode, body, false, nil
}

func snippet(b []byte) string {
	s := string(bytes.TrimSpace(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// IMDSProvider reads user data from AWS IMDS.
type IMDSProvider struct {
	Client *IMDSClient
}

// Name implements Provider.
func (p IMDSProvider) Name() string { return "imds" }

// Source implements Sourcer.
func (p IMDSProvider) Source() string { return p.Client.baseURL() + imdsUserDataPath }

// Fetch implements Provider; no user data (404) means none.
func (p IMDSProvider) Fetch(ctx context.Context) ([]byte, error) {
	return p.Client.UserData(ctx)
}
