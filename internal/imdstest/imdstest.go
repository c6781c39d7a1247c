// Package imdstest owns a fake AWS instance metadata service for tests: an
// HTTP server on 127.0.0.1 that speaks the IMDSv2 session protocol (PUT
// /latest/api/token with a TTL, then GETs carrying the token), serves
// /latest/user-data, counts requests so tests can assert token reuse and
// refresh, and can expire tokens or fail requests on demand.
package imdstest

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The protocol's paths, headers and limits.
const (
	TokenPath    = "/latest/api/token"
	UserDataPath = "/latest/user-data"
	TTLHeader    = "X-aws-ec2-metadata-token-ttl-seconds"
	TokenHeader  = "X-aws-ec2-metadata-token"
	MaxTTL       = 21600 // seconds
)

// Options configure a Server.
type Options struct {
	// UserData is served at /latest/user-data; nil means none (404).
	UserData []byte
	// Now is the clock tokens expire by; nil means time.Now.
	Now func() time.Time
	// TTLUnit is how long one second of a token's TTL lasts, so tests can
	// use short TTLs within the protocol's 1-21600 range; 0 means a second.
	TTLUnit time.Duration
}

// Counts are the requests a Server has seen.
type Counts struct {
	TokenRequests    int // PUT /latest/api/token answered with a token
	BadTokenRequests int // PUT /latest/api/token refused with 400
	Unauthorized     int // GETs refused with 401
	UserData         int // GET /latest/user-data answered (200 or 404)
	Failed           int // requests answered with an injected failure
}

// Server is a running fake IMDS.
type Server struct {
	// URL is the base URL, http://127.0.0.1:port.
	URL string

	srv  *httptest.Server
	now  func() time.Time
	unit time.Duration

	mu       sync.Mutex
	userData []byte
	tokens   map[string]time.Time // token → expiry
	counts   Counts
	failures []int
}

// New starts a Server; Close stops it.
func New(opts Options) *Server {
	s := &Server{now: opts.Now, unit: opts.TTLUnit, tokens: map[string]time.Time{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.unit <= 0 {
		s.unit = time.Second
	}
	if opts.UserData != nil {
		s.userData = append([]byte{}, opts.UserData...)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Start is New for a test: the server stops when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := New(opts)
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// SetUserData replaces the user data; nil means none (404).
func (s *Server) SetUserData(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b == nil {
		s.userData = nil
		return
	}
	s.userData = append([]byte{}, b...)
}

// ExpireTokens makes every token issued so far invalid, as if each had
// reached its TTL: the next GET carrying one gets 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// FailNext makes the next requests, whatever their path, answer with the
// given statuses, one each, before normal service resumes.
func (s *Server) FailNext(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, statuses...)
}

// Counts returns the requests seen so far.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) > 0 {
		status := s.failures[0]
		s.failures = s.failures[1:]
		s.counts.Failed++
		http.Error(w, http.StatusText(status), status)
		return
	}
	if r.URL.Path == TokenPath {
		s.token(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	expiry, ok := s.tokens[r.Header.Get(TokenHeader)]
	if !ok || !s.now().Before(expiry) {
		delete(s.tokens, r.Header.Get(TokenHeader))
		s.counts.Unauthorized++
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	switch {
	case r.URL.Path == UserDataPath:
		s.counts.UserData++
		if s.userData == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(s.userData)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// Like the real service, refuse token requests that went through a proxy.
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(strings.TrimSpace(r.Header.Get(TTLHeader)))
	if err != nil || ttl < 1 || ttl > MaxTTL {
		s.counts.BadTokenRequests++
		http.Error(w, "Bad Request", http.StatusBadRequest)
		return
	}
	b := make([]byte, 33)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	s.tokens[tok] = s.now().Add(time.Duration(ttl) * s.unit)
	s.counts.TokenRequests++
	w.Header().Set(TTLHeader, strconv.Itoa(ttl))
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte(tok))
}
