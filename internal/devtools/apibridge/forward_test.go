package apibridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-os/gantry/pkg/apiclient"
)

// apiStandIn serves a tiny HTTP API on a Unix socket, like apiserver:
// GET /os answers JSON, POST /echo returns the body.
func apiStandIn(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /os", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"variant_id":"metal-dev"}`)
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		// HTTP/1 handlers must read the body before they answer.
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write(b)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// startForwarder serves f on ln in the background and stops it at cleanup,
// failing the test if Serve returned an error.
func startForwarder(t *testing.T, f *Forwarder, ln net.Listener) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return cancel
}

func shortTempDir(t *testing.T) string {
	t.Helper()
	// Unix socket paths are limited to 107 bytes; t.TempDir can be long.
	d, err := os.MkdirTemp("", "apib")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestChainHostToGuest runs the whole path `gantry run` builds, without
// QEMU: apiclient → host Unix socket → (TCP, QEMU's hostfwd in real life)
// → guest bridge → API Unix socket.
func TestChainHostToGuest(t *testing.T) {
	dir := shortTempDir(t)
	apiSock := filepath.Join(dir, "api.sock")
	apiStandIn(t, apiSock)

	guestLn := listenTCP(t)
	startForwarder(t, &Forwarder{Dial: UnixDialer(apiSock)}, guestLn)

	hostSock := filepath.Join(dir, "host.sock")
	hostLn, err := net.Listen("unix", hostSock)
	if err != nil {
		t.Fatal(err)
	}
	startForwarder(t, &Forwarder{Dial: TCPDialer(guestLn.Addr().String())}, hostLn)

	big := make([]byte, 3<<20)
	rand.Read(big)
	tests := []struct {
		name, method, uri string
		body              []byte
		want              []byte
	}{
		{"small GET", "GET", "/os", nil, []byte(`{"variant_id":"metal-dev"}`)},
		{"3 MiB POST echoed", "POST", "/echo", big, big},
		{"empty POST", "POST", "/echo", []byte{}, []byte{}},
	}
	c := apiclient.New(hostSock)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, got, err := c.Do(ctx, tc.method, tc.uri, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if code != 200 || !bytes.Equal(got, tc.want) {
				t.Fatalf("status %d, %d bytes; want 200, %d bytes", code, len(got), len(tc.want))
			}
		})
	}

	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for i := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := []byte(fmt.Sprintf("request %d %s", i, strings.Repeat("x", i*1000)))
				// A new client per request: a new connection through both forwarders.
				code, got, err := apiclient.New(hostSock).Do(ctx, "POST", "/echo", body)
				if err == nil && (code != 200 || !bytes.Equal(got, body)) {
					err = fmt.Errorf("request %d: status %d, %d bytes", i, code, len(got))
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})
}

// TestHalfClose checks that EOF from the client reaches the far side as EOF
// while the far side can still answer, in both forwarder directions.
func TestHalfClose(t *testing.T) {
	tests := []struct {
		name string
		// far starts a server that reads to EOF, then answers, and returns
		// the dialer for it.
		listenFar func(t *testing.T, dir string) (net.Listener, Dialer)
		// near is the forwarder's own listener.
		listenNear func(t *testing.T, dir string) net.Listener
	}{
		{
			name: "TCP to Unix (guest bridge)",
			listenFar: func(t *testing.T, dir string) (net.Listener, Dialer) {
				p := filepath.Join(dir, "far.sock")
				ln, err := net.Listen("unix", p)
				if err != nil {
					t.Fatal(err)
				}
				return ln, UnixDialer(p)
			},
			listenNear: func(t *testing.T, dir string) net.Listener { return listenTCP(t) },
		},
		{
			name: "Unix to TCP (host forwarder)",
			listenFar: func(t *testing.T, dir string) (net.Listener, Dialer) {
				ln := listenTCP(t)
				return ln, TCPDialer(ln.Addr().String())
			},
			listenNear: func(t *testing.T, dir string) net.Listener {
				ln, err := net.Listen("unix", filepath.Join(dir, "near.sock"))
				if err != nil {
					t.Fatal(err)
				}
				return ln
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortTempDir(t)
			far, dial := tc.listenFar(t, dir)
			defer far.Close()
			go func() {
				c, err := far.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				got, _ := io.ReadAll(c) // until the client's half-close
				fmt.Fprintf(c, "got %d bytes: %s", len(got), got)
			}()
			near := tc.listenNear(t, dir)
			startForwarder(t, &Forwarder{Dial: dial}, near)

			c, err := net.Dial(near.Addr().Network(), near.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "ping")
			if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if want := "got 4 bytes: ping"; string(got) != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
}

// TestDialFailureThenRecovery: while the API socket is missing, a client is
// disconnected at once and Serve keeps going; once the socket exists,
// connections work.
func TestDialFailureThenRecovery(t *testing.T) {
	dir := shortTempDir(t)
	apiSock := filepath.Join(dir, "api.sock")
	ln := listenTCP(t)
	startForwarder(t, &Forwarder{Dial: UnixDialer(apiSock), DialTimeout: time.Second}, ln)

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	c.Close()
	if n != 0 || !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("read from a bridge without API: n=%d err=%v; want EOF", n, err)
	}

	apiStandIn(t, apiSock)
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + ln.Addr().String() + "/os")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "metal-dev") {
		t.Fatalf("body %q", body)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// TestServeCancelClosesConnections: cancelling Serve closes its listener
// and every forwarded connection, even idle ones, and Serve returns nil.
func TestServeCancelClosesConnections(t *testing.T) {
	dir := shortTempDir(t)
	apiSock := filepath.Join(dir, "api.sock")
	far, err := net.Listen("unix", apiSock)
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := far.Accept(); err == nil {
			accepted <- c
		}
	}()

	ln := listenTCP(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Forwarder{Dial: UnixDialer(apiSock)}).Serve(ctx, ln) }()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	farConn := <-accepted
	defer farConn.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	for name, conn := range map[string]net.Conn{"client": c, "far side": farConn} {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s connection still open after cancel (err %v)", name, err)
		}
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("listener still accepting after cancel")
	}
}

func TestServeWithoutDialer(t *testing.T) {
	ln := listenTCP(t)
	if err := (&Forwarder{}).Serve(context.Background(), ln); err == nil {
		t.Fatal("Serve without a dialer succeeded")
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("listener not closed: %v", err)
	}
}
