package apibridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// DefaultDialTimeout bounds each dial of the far side when
// Forwarder.DialTimeout is zero.
const DefaultDialTimeout = 10 * time.Second

// Dialer opens the far side of one forwarded connection.
type Dialer func(ctx context.Context) (net.Conn, error)

// UnixDialer dials the Unix socket at path.
func UnixDialer(path string) Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
}

// TCPDialer dials the TCP address addr (host:port).
func TCPDialer(addr string) Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

// Forwarder copies bytes both ways between each accepted connection and a
// connection to the far side, which it dials once per accepted connection.
// One direction reaching EOF half-closes the other side's write end, so
// request/response protocols see the close they expect.
type Forwarder struct {
	// Dial opens the far side. Required.
	Dial Dialer
	// DialTimeout bounds each dial; zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// Logger receives one debug line per connection, and dial failures as
	// debug lines too (the far side is often just not up yet); nil discards them.
	Logger *slog.Logger
}

// Serve accepts connections on ln and forwards each of them until ctx is
// done, then closes ln and every connection still open, and returns nil.
// It returns an error if ln fails for another reason, after closing the
// connections it forwarded. Serve always closes ln.
func (f *Forwarder) Serve(ctx context.Context, ln net.Listener) error {
	if f.Dial == nil {
		ln.Close()
		return errors.New("forward: no dialer")
	}
	log := f.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var wg sync.WaitGroup
	defer wg.Wait() // runs last: after cancel has closed every connection
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()

	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("forward: accept on %s: %w", ln.Addr(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.handle(ctx, conn, log)
		}()
	}
}

func (f *Forwarder) handle(ctx context.Context, client net.Conn, log *slog.Logger) {
	timeout := f.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	far, err := f.Dial(dctx)
	cancel()
	if err != nil {
		client.Close()
		if ctx.Err() == nil {
			log.Debug("forward: dial failed", "client", client.RemoteAddr().String(), "error", err)
		}
		return
	}
	start := time.Now()
	up, down, err := Pipe(ctx, client, far)
	log.Debug("forward: connection closed", "client", client.RemoteAddr().String(),
		"bytes_up", up, "bytes_down", down, "duration", time.Since(start), "error", err)
}

// Pipe copies a to b and b to a until both directions are done or ctx is
// done, then closes both connections. A direction that ends with EOF
// half-closes the writer's side (CloseWrite) when the connection supports
// it, so the other direction can finish; a direction that fails closes
// both at once. It returns the bytes copied each way and the first error
// other than EOF and the closing itself.
func Pipe(ctx context.Context, a, b net.Conn) (aToB, bToA int64, err error) {
	type result struct {
		n     int64
		err   error
		aToB  bool
		clean bool
	}
	results := make(chan result, 2)
	copyHalf := func(dst, src net.Conn, aToB bool) {
		n, err := io.Copy(dst, src)
		clean := err == nil
		if clean {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			} else {
				clean = false
			}
		}
		results <- result{n: n, err: err, aToB: aToB, clean: clean}
	}
	go copyHalf(b, a, true)
	go copyHalf(a, b, false)

	closed := false
	closeBoth := func() {
		if !closed {
			closed = true
			a.Close()
			b.Close()
		}
	}
	done := ctx.Done()
	for pending := 2; pending > 0; {
		select {
		case r := <-results:
			pending--
			if r.aToB {
				aToB = r.n
			} else {
				bToA = r.n
			}
			if r.err != nil && err == nil && !closed && !errors.Is(r.err, net.ErrClosed) {
				err = r.err
			}
			if !r.clean {
				closeBoth()
			}
		case <-done:
			done = nil
			closeBoth()
		}
	}
	closeBoth()
	return aToB, bToA, err
}
