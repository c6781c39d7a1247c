package earlyboot_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/imdstest"
	"github.com/gantry-os/gantry/internal/settings/earlyboot"
)

func fastClient(url string, clk *clock) *earlyboot.IMDSClient {
	c := earlyboot.NewIMDSClient(url)
	c.Attempts = 3
	c.Backoff = time.Millisecond
	c.Timeout = 2 * time.Second
	if clk != nil {
		c.Now = clk.Now
	}
	return c
}

func TestIMDSUserData(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		userData []byte
		want     string // "<nil>" for none
	}{
		{name: "user data", userData: []byte(ud), want: ud},
		{name: "none is 404", userData: nil, want: "<nil>"},
		{name: "empty", userData: []byte{}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := imdstest.Start(t, imdstest.Options{UserData: tt.userData})
			got, err := fastClient(srv.URL, nil).UserData(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s := "<nil>"
			if got != nil {
				s = string(got)
			}
			if s != tt.want {
				t.Fatalf("UserData = %q, want %q", s, tt.want)
			}
			if c := srv.Counts(); c.TokenRequests != 1 || c.UserData != 1 || c.Unauthorized != 0 {
				t.Fatalf("counts = %+v", c)
			}
		})
	}
}

func TestIMDSTokenCachedThenRefreshedBeforeExpiry(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	srv := imdstest.Start(t, imdstest.Options{UserData: []byte(ud), Now: clk.Now})
	c := fastClient(srv.URL, clk)
	c.TokenTTL = 10 * time.Second

	steps := []struct {
		advance    time.Duration
		wantTokens int
	}{
		{0, 1},
		{5 * time.Second, 1}, // still fresh: reused
		{3 * time.Second, 1}, // 8 s: still used
		{1 * time.Second, 2}, // 9 s: within a tenth of the TTL of expiry, refreshed
		{500 * time.Millisecond, 2},
		{10 * time.Second, 3}, // the second token is past its TTL
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		if _, err := c.UserData(ctx); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := srv.Counts(); got.TokenRequests != s.wantTokens || got.Unauthorized != 0 {
			t.Fatalf("step %d: counts %+v, want %d token requests and no 401", i, got, s.wantTokens)
		}
	}
}

func TestIMDSRecoversFrom401(t *testing.T) {
	ctx := context.Background()
	srv := imdstest.Start(t, imdstest.Options{UserData: []byte(ud)})
	c := fastClient(srv.URL, nil)
	if _, err := c.UserData(ctx); err != nil {
		t.Fatal(err)
	}
	srv.ExpireTokens() // the cached token is no longer valid
	got, err := c.UserData(ctx)
	if err != nil || string(got) != ud {
		t.Fatalf("UserData after expiry = %q, %v", got, err)
	}
	if cn := srv.Counts(); cn.TokenRequests != 2 || cn.Unauthorized != 1 || cn.UserData != 2 {
		t.Fatalf("counts = %+v, want 2 token requests, one 401, 2 user-data answers", cn)
	}
}

func TestIMDSPersistent401(t *testing.T) {
	// Tokens that expire as soon as they are issued: every GET is a 401.
	srv := imdstest.Start(t, imdstest.Options{UserData: []byte(ud), TTLUnit: time.Nanosecond})
	c := fastClient(srv.URL, nil)
	c.TokenTTL = time.Second // one "second" of 1 ns
	_, err := c.UserData(context.Background())
	if err == nil || !strings.Contains(err.Error(), "401 Unauthorized even with a new session token") {
		t.Fatalf("err = %v", err)
	}
	if cn := srv.Counts(); cn.TokenRequests != 2 || cn.Unauthorized != 2 {
		t.Fatalf("counts = %+v: want one refresh only", cn)
	}
}

func TestIMDSRetries(t *testing.T) {
	ctx := context.Background()
	t.Run("5xx retried", func(t *testing.T) {
		srv := imdstest.Start(t, imdstest.Options{UserData: []byte(ud)})
		srv.FailNext(http.StatusServiceUnavailable, http.StatusInternalServerError) // the token PUT, twice
		got, err := fastClient(srv.URL, nil).UserData(ctx)
		if err != nil || string(got) != ud {
			t.Fatalf("UserData = %q, %v", got, err)
		}
		if cn := srv.Counts(); cn.Failed != 2 || cn.TokenRequests != 1 {
			t.Fatalf("counts = %+v", cn)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		srv := imdstest.Start(t, imdstest.Options{UserData: []byte(ud)})
		srv.FailNext(503, 503, 503, 503)
		_, err := fastClient(srv.URL, nil).UserData(ctx)
		if err == nil || !strings.Contains(err.Error(), "giving up after 3 attempts: status 503") {
			t.Fatalf("err = %v", err)
		}
		if cn := srv.Counts(); cn.Failed != 3 {
			t.Fatalf("counts = %+v: want exactly 3 attempts", cn)
		}
	})
	t.Run("4xx not retried", func(t *testing.T) {
		srv := imdstest.Start(t, imdstest.Options{UserData: []byte(ud)})
		srv.FailNext(http.StatusForbidden)
		_, err := fastClient(srv.URL, nil).UserData(ctx)
		if err == nil || !strings.Contains(err.Error(), "status 403") {
			t.Fatalf("err = %v", err)
		}
		if cn := srv.Counts(); cn.Failed != 1 {
			t.Fatalf("counts = %+v", cn)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		start := time.Now()
		_, err = fastClient("http://"+addr, nil).UserData(ctx)
		if err == nil || !strings.Contains(err.Error(), "giving up after 3 attempts") || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v", d)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		block := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}))
		defer slow.Close()
		defer close(block)
		c := fastClient(slow.URL, nil)
		c.Timeout = 50 * time.Millisecond
		c.Attempts = 2
		_, err := c.UserData(ctx)
		if err == nil || !strings.Contains(err.Error(), "giving up after 2 attempts") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("context cancelled while waiting", func(t *testing.T) {
		srv := imdstest.Start(t, imdstest.Options{UserData: []byte(ud)})
		srv.FailNext(503, 503, 503)
		c := fastClient(srv.URL, nil)
		c.Backoff = time.Hour
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := c.UserData(cctx)
		if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestIMDSTokenTTLHeader(t *testing.T) {
	tests := []struct {
		ttl  time.Duration
		want string
	}{
		{0, "21600"},
		{90 * time.Second, "90"},
		{time.Millisecond, "1"},
		{48 * time.Hour, "21600"},
	}
	for _, tt := range tests {
		var got string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				got = r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds")
				w.Write([]byte("tok"))
				return
			}
			if r.Header.Get("X-aws-ec2-metadata-token") != "tok" {
				t.Errorf("GET without the token: %v", r.Header)
			}
			http.NotFound(w, r)
		}))
		c := fastClient(srv.URL, nil)
		c.TokenTTL = tt.ttl
		if _, err := c.UserData(context.Background()); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if got != tt.want {
			t.Errorf("TTL %v: header %q, want %q", tt.ttl, got, tt.want)
		}
	}
}
