package imdstest

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func do(t *testing.T, method, url string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTokenRequests(t *testing.T) {
	s := Start(t, Options{UserData: []byte("ud")})
	tests := []struct {
		name   string
		method string
		hdr    map[string]string
		want   int
	}{
		{"ttl 1", http.MethodPut, map[string]string{TTLHeader: "1"}, 200},
		{"ttl max", http.MethodPut, map[string]string{TTLHeader: "21600"}, 200},
		{"no ttl", http.MethodPut, nil, 400},
		{"ttl 0", http.MethodPut, map[string]string{TTLHeader: "0"}, 400},
		{"ttl too long", http.MethodPut, map[string]string{TTLHeader: "21601"}, 400},
		{"ttl not a number", http.MethodPut, map[string]string{TTLHeader: "1h"}, 400},
		{"through a proxy", http.MethodPut, map[string]string{TTLHeader: "60", "X-Forwarded-For": "10.0.0.1"}, 403},
		{"GET the token path", http.MethodGet, map[string]string{TTLHeader: "60"}, 405},
	}
	for _, tt := range tests {
		if code, body := do(t, tt.method, s.URL+TokenPath, tt.hdr); code != tt.want {
			t.Errorf("%s: status %d (%s), want %d", tt.name, code, body, tt.want)
		}
	}
	if c := s.Counts(); c.TokenRequests != 2 || c.BadTokenRequests != 4 {
		t.Fatalf("counts = %+v", c)
	}
}

func TestGets(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := Start(t, Options{Now: clock})
	_, tok := do(t, http.MethodPut, s.URL+TokenPath, map[string]string{TTLHeader: "10"})
	auth := map[string]string{TokenHeader: tok}

	tests := []struct {
		name     string
		setup    func()
		path     string
		hdr      map[string]string
		want     int
		wantBody string
	}{
		{name: "no token", path: UserDataPath, want: 401},
		{name: "unknown token", path: UserDataPath, hdr: map[string]string{TokenHeader: "forged"}, want: 401},
		{name: "no user data", path: UserDataPath, hdr: auth, want: 404},
		{name: "user data", setup: func() { s.SetUserData([]byte("hello")) }, path: UserDataPath, hdr: auth, want: 200, wantBody: "hello"},
		{name: "other path", path: "/latest/meta-data/instance-id", hdr: auth, want: 404},
		{name: "injected failure", setup: func() { s.FailNext(503) }, path: UserDataPath, hdr: auth, want: 503},
		{name: "back to normal", path: UserDataPath, hdr: auth, want: 200, wantBody: "hello"},
		{name: "still valid at 9.9 s", setup: func() { mu.Lock(); now = now.Add(9900 * time.Millisecond); mu.Unlock() }, path: UserDataPath, hdr: auth, want: 200},
		{name: "expired at 10 s", setup: func() { mu.Lock(); now = now.Add(100 * time.Millisecond); mu.Unlock() }, path: UserDataPath, hdr: auth, want: 401},
		{name: "none again", setup: func() { s.SetUserData(nil) }, path: UserDataPath, hdr: map[string]string{TokenHeader: newToken(t, s)}, want: 404},
	}
	for _, tt := range tests {
		if tt.setup != nil {
			tt.setup()
		}
		code, body := do(t, http.MethodGet, s.URL+tt.path, tt.hdr)
		if code != tt.want || (tt.wantBody != "" && body != tt.wantBody) {
			t.Errorf("%s: %d %q, want %d %q", tt.name, code, body, tt.want, tt.wantBody)
		}
	}
	if c := s.Counts(); c.Unauthorized != 3 || c.Failed != 1 || c.TokenRequests != 2 {
		t.Fatalf("counts = %+v", c)
	}
}

func newToken(t *testing.T, s *Server) string {
	_, tok := do(t, http.MethodPut, s.URL+TokenPath, map[string]string{TTLHeader: "60"})
	return tok
}

func TestExpireTokensAndTTLUnit(t *testing.T) {
	s := Start(t, Options{UserData: []byte("x"), TTLUnit: time.Millisecond})
	tok := newToken(t, s)
	if code, _ := do(t, http.MethodGet, s.URL+UserDataPath, map[string]string{TokenHeader: tok}); code != 200 {
		t.Fatalf("fresh token: %d", code)
	}
	s.ExpireTokens()
	if code, _ := do(t, http.MethodGet, s.URL+UserDataPath, map[string]string{TokenHeader: tok}); code != 401 {
		t.Fatalf("expired token: %d", code)
	}
	tok = newToken(t, s) // 60 "seconds" of 1 ms
	time.Sleep(100 * time.Millisecond)
	if code, _ := do(t, http.MethodGet, s.URL+UserDataPath, map[string]string{TokenHeader: tok}); code != 401 {
		t.Fatalf("token past its short TTL: %d", code)
	}
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("URL = %s", s.URL)
	}
}
