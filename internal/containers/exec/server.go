// Package exec serves GET /exec, Bottlerocket's WebSocket protocol for
// `apiclient exec` (the messages are in pkg/apiclient): it starts a command
// in a running host container through an Execer (host-containerd's task
// exec, with a terminal when asked), streams its input and output, resizes
// its terminal, keeps the client within its input capacity, and closes
// with the exit code. When the client goes away, the process is sent
// SIGTERM, and SIGKILL 10 s later.
package exec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/gantry-os/gantry/pkg/apiclient"
)

// Process is a started command.
type Process interface {
	// Stdin is the process's input; closing it is end of input.
	Stdin() io.WriteCloser
	// Output is stdout and stderr together; it ends after the process.
	Output() io.Reader
	Resize(ctx context.Context, s apiclient.Size) error
	Signal(ctx context.Context, sig syscall.Signal) error
	// Wait returns the exit code (128+N when killed by signal N).
	Wait(ctx context.Context) (int, error)
	// Close releases the process (killing it if it still runs).
	Close()
}

// Execer starts commands in containers.
type Execer interface {
	Start(ctx context.Context, target string, command []string, tty *apiclient.Size) (Process, error)
}

// UserError is a request the Execer refuses (no such container, empty
// command): its message goes to the client as the close reason.
type UserError struct{ Err error }

func (e UserError) Error() string { return e.Err.Error() }
func (e UserError) Unwrap() error { return e.Err }

// Serve runs one exec session on the request.
func Serve(w http.ResponseWriter, r *http.Request, ex Execer, log *slog.Logger) {
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		log.Debug("exec: not a WebSocket request", "error", err)
		return
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	s := &session{conn: conn, log: log, ctx: ctx, cancel: cancel, input: make(chan []byte, apiclient.MaxOutstanding)}
	s.run(ex)
}

type session struct {
	conn   *websocket.Conn
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wmu    sync.Mutex
	input  chan []byte
}

func (s *session) write(typ websocket.MessageType, b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.conn.Write(s.ctx, typ, b)
}

// closeWith closes the connection; reasons are cut to the protocol's 123
// bytes.
func (s *session) closeWith(code websocket.StatusCode, reason string) {
	if len(reason) > 123 {
		reason = reason[:120] + "..."
	}
	_ = s.conn.Close(code, reason)
}

func (s *session) run(ex Execer) {
	init, code, err := s.initialize()
	if err != nil {
		s.closeWith(code, err.Error())
		return
	}
	cmd := make([]string, len(init.Command))
	for i, a := range init.Command {
		cmd[i] = string(a)
	}
	var tty *apiclient.Size
	if init.TTY != nil {
		tty = &init.TTY.Size
	}
	p, err := ex.Start(s.ctx, init.Target, cmd, tty)
	if err != nil {
		var ue UserError
		if errors.As(err, &ue) {
			s.closeWith(websocket.StatusPolicyViolation, err.Error())
		} else {
			s.log.Error("exec: start failed", "target", init.Target, "error", err)
			s.closeWith(websocket.StatusInternalError, err.Error())
		}
		return
	}
	defer p.Close()
	s.log.Info("exec started", "target", init.Target, "command", cmd, "tty", tty != nil)
	if err := s.capacity(0); err != nil {
		return
	}
	outputDone := make(chan struct{})
	go s.pumpOutput(p, outputDone)
	go s.pumpInput(p)
	go s.heartbeat()
	exited := make(chan int, 1)
	go func() {
		code, err := p.Wait(context.WithoutCancel(s.ctx))
		if err != nil {
			s.log.Warn("exec: wait failed", "error", err)
			code = 1
		}
		exited <- code
	}()
	clientGone := make(chan error, 1)
	go func() { clientGone <- s.readLoop(p) }()
	select {
	case code := <-exited:
		select {
		case <-outputDone:
		case <-time.After(5 * time.Second):
		}
		s.closeWith(websocket.StatusNormalClosure, strconv.Itoa(code))
	case err := <-clientGone:
		s.log.Info("exec: the client went away; stopping the process", "target", init.Target, "reason", err)
		s.stop(p, exited)
	}
}

// initialize reads the Initialize message, within 30 s.
func (s *session) initialize() (*apiclient.Initialize, websocket.StatusCode, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	typ, b, err := s.conn.Read(ctx)
	if err != nil {
		return nil, websocket.StatusPolicyViolation, fmt.Errorf("no Initialize message: %w", err)
	}
	if typ != websocket.MessageText {
		return nil, websocket.StatusPolicyViolation, errors.New("data before Initialize")
	}
	var m apiclient.ClientMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, websocket.StatusInvalidFramePayloadData, fmt.Errorf("invalid message: %v", err)
	}
	if m.Initialize == nil {
		return nil, websocket.StatusPolicyViolation, errors.New("the first message must be Initialize")
	}
	if m.Initialize.Target == "" || len(m.Initialize.Command) == 0 {
		return nil, websocket.StatusPolicyViolation, errors.New("Initialize needs a target and a command")
	}
	return m.Initialize, 0, nil
}

func (s *session) capacity(written uint64) error {
	b, _ := json.Marshal(apiclient.ServerMessage{Capacity: &apiclient.Capacity{
		MaxMessagesOutstanding: apiclient.MaxOutstanding, MessagesWritten: written}})
	return s.write(websocket.MessageText, b)
}

// readLoop takes the client's messages until the connection ends.
func (s *session) readLoop(p Process) error {
	for {
		typ, b, err := s.conn.Read(s.ctx)
		if err != nil {
			return err
		}
		if typ == websocket.MessageBinary {
			select {
			case s.input <- b:
			default:
				s.closeWith(websocket.StatusMessageTooBig, "write buffer full; obey capacity updates")
				return errors.New("the client ignored its capacity")
			}
			continue
		}
		var m apiclient.ClientMessage
		if err := json.Unmarshal(b, &m); err != nil {
			s.closeWith(websocket.StatusInvalidFramePayloadData, fmt.Sprintf("invalid message: %v", err))
			return err
		}
		switch {
		case m.ContentComplete:
			s.input <- nil
		case m.Winch != nil:
			if err := p.Resize(s.ctx, *m.Winch); err != nil {
				s.log.Debug("exec: resize failed", "error", err)
			}
		case m.Initialize != nil:
			s.closeWith(websocket.StatusPolicyViolation, "Initialize sent twice")
			return errors.New("Initialize sent twice")
		}
	}
}

// pumpInput writes the client's input to the process, reporting capacity
// every CapacityEvery messages; a nil message is end of input.
func (s *session) pumpInput(p Process) {
	in := p.Stdin()
	var written uint64
	for {
		select {
		case <-s.ctx.Done():
			return
		case b := <-s.input:
			if b == nil {
				in.Close()
				return
			}
			if _, err := in.Write(b); err != nil {
				s.log.Debug("exec: input write failed", "error", err)
			}
			written++
			if written%apiclient.CapacityEvery == 0 {
				if s.capacity(written) != nil {
					return
				}
			}
		}
	}
}

func (s *session) pumpOutput(p Process, done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, 32*1024)
	out := p.Output()
	for {
		n, err := out.Read(buf)
		if n > 0 {
			if s.write(websocket.MessageBinary, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *session) heartbeat() {
	t := time.NewTicker(apiclient.HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.ctx, apiclient.HeartbeatTimeout)
			err := s.conn.Ping(ctx)
			cancel()
			if err != nil {
				s.cancel()
				return
			}
		}
	}
}

// stop ends a process whose client left: SIGTERM, SIGKILL after 10 s.
func (s *session) stop(p Process, exited <-chan int) {
	ctx := context.WithoutCancel(s.ctx)
	_ = p.Signal(ctx, syscall.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(10 * time.Second):
	}
	_ = p.Signal(ctx, syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
	}
}
