package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// The /exec protocol (Bottlerocket's): a WebSocket on the API socket.
// Binary frames carry the process's input (client to server) and its
// output, stdout and stderr together (server to client). Text frames carry
// JSON control messages in serde's external tagging. The server closes
// with a normal closure whose reason is the exit code.
const (
	// MaxOutstanding is how many input messages may await the server.
	MaxOutstanding = 1024
	// CapacityEvery is how often (in messages written) the server reports.
	CapacityEvery = 128
	// HeartbeatEvery and HeartbeatTimeout pace the pings on both sides.
	HeartbeatEvery   = 2 * time.Second
	HeartbeatTimeout = 10 * time.Second
)

// Size is a terminal's size.
type Size struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// TTY asks for a terminal of a size.
type TTY struct {
	Size Size `json:"size"`
}

// Initialize starts the process: the first message of a session.
type Initialize struct {
	Command []Arg  `json:"command"`
	Target  string `json:"target"`
	TTY     *TTY   `json:"tty"`
}

// Arg is one argument. On the wire it is Rust's OsString as serde writes it
// on Unix ({"Unix":[bytes]}); a plain JSON string is read too.
type Arg string

// MarshalJSON implements json.Marshaler.
func (a Arg) MarshalJSON() ([]byte, error) {
	bs := make([]int, len(a))
	for i := range len(a) {
		bs[i] = int(a[i])
	}
	return json.Marshal(map[string][]int{"Unix": bs})
}

// UnmarshalJSON implements json.Unmarshaler.
func (a *Arg) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = Arg(s)
		return nil
	}
	var u struct {
		Raw []int `json:"Unix"`
	}
	if err := json.Unmarshal(b, &u); err != nil || u.Raw == nil {
		return fmt.Errorf("argument must be a string or {\"Unix\":[bytes]}, got %s", b)
	}
	out := make([]byte, len(u.Raw))
	for i, v := range u.Raw {
		if v < 0 || v > 255 {
			return fmt.Errorf("argument byte %d out of range", v)
		}
		out[i] = byte(v)
	}
	*a = Arg(out)
	return nil
}

// Capacity is the server's report of how many input messages it wrote.
type Capacity struct {
	MaxMessagesOutstanding uint64 `json:"max_messages_outstanding"`
	MessagesWritten        uint64 `json:"messages_written"`
}

// ClientMessage is a client's control message; exactly one field is set,
// except ContentComplete, which is the bare string "ContentComplete".
type ClientMessage struct {
	Initialize      *Initialize `json:"Initialize,omitempty"`
	Winch           *Size       `json:"Winch,omitempty"`
	ContentComplete bool        `json:"-"`
}

// MarshalJSON implements json.Marshaler.
func (m ClientMessage) MarshalJSON() ([]byte, error) {
	if m.ContentComplete {
		return []byte(`"ContentComplete"`), nil
	}
	type plain ClientMessage
	return json.Marshal(plain(m))
}

// UnmarshalJSON implements json.Unmarshaler.
func (m *ClientMessage) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s != "ContentComplete" {
			return fmt.Errorf("unknown message %q", s)
		}
		*m = ClientMessage{ContentComplete: true}
		return nil
	}
	type plain ClientMessage
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if (p.Initialize == nil) == (p.Winch == nil) {
		return fmt.Errorf("want exactly one of Initialize, Winch or ContentComplete, got %s", b)
	}
	*m = ClientMessage(p)
	return nil
}

// ServerMessage is the server's control message.
type ServerMessage struct {
	Capacity *Capacity `json:"Capacity,omitempty"`
}

// ExecOptions describe an exec session.
type ExecOptions struct {
	// Target is the host container (its containerd ID: admin, boot.<name>).
	Target  string
	Command []string
	// TTY, when set, asks for a terminal of that size.
	TTY *Size
	// Resize delivers the terminal's new sizes (SIGWINCH).
	Resize <-chan Size
	Stdin  io.Reader
	Stdout io.Writer
}

// Exec runs a command in a host container through GET /exec and returns
// its exit code (128+N for a process killed by signal N, as the server
// reports it). Cancelling ctx ends the session; the server then stops the
// process.
func (c *Client) Exec(ctx context.Context, o ExecOptions) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(c.base, "http") + "/exec"
	conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: c.http})
	if err != nil {
		return 1, fmt.Errorf("exec: connect: %w", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	args := make([]Arg, len(o.Command))
	for i, a := range o.Command {
		args[i] = Arg(a)
	}
	init := Initialize{Command: args, Target: o.Target}
	if o.TTY != nil {
		init.TTY = &TTY{Size: *o.TTY}
	}
	var wmu sync.Mutex
	send := func(typ websocket.MessageType, b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return conn.Write(ctx, typ, b)
	}
	sendJSON := func(m ClientMessage) error {
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return send(websocket.MessageText, b)
	}
	if err := sendJSON(ClientMessage{Initialize: &init}); err != nil {
		return 1, fmt.Errorf("exec: %w", err)
	}
	credit := newCredit()
	go func() { // input
		if o.Stdin == nil {
			_ = sendJSON(ClientMessage{ContentComplete: true})
			return
		}
		buf := make([]byte, 32*1024)
		for {
			n, rerr := o.Stdin.Read(buf)
			if n > 0 {
				if credit.take(ctx) != nil || send(websocket.MessageBinary, buf[:n]) != nil {
					return
				}
			}
			if rerr != nil {
				_ = sendJSON(ClientMessage{ContentComplete: true})
				return
			}
		}
	}()
	go func() { // resizes
		for {
			select {
			case <-ctx.Done():
				return
			case s, ok := <-o.Resize:
				if !ok {
					return
				}
				_ = sendJSON(ClientMessage{Winch: &s})
			}
		}
	}()
	go heartbeat(ctx, conn, cancel)
	for {
		typ, b, err := conn.Read(ctx)
		if err != nil {
			return exitFromClose(err)
		}
		switch typ {
		case websocket.MessageBinary:
			if _, err := o.Stdout.Write(b); err != nil {
				return 1, fmt.Errorf("exec: write output: %w", err)
			}
		case websocket.MessageText:
			var m ServerMessage
			if json.Unmarshal(b, &m) == nil && m.Capacity != nil {
				credit.update(*m.Capacity)
			}
		}
	}
}

// exitFromClose turns the server's close into the exit code.
func exitFromClose(err error) (int, error) {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		if ce.Code == websocket.StatusNormalClosure {
			code, perr := strconv.Atoi(ce.Reason)
			if perr != nil {
				return 1, fmt.Errorf("exec: the server closed with %q, not an exit code", ce.Reason)
			}
			return code, nil
		}
		return 1, fmt.Errorf("exec: %s", ce.Reason)
	}
	return 1, fmt.Errorf("exec: %w", err)
}

// heartbeat pings the peer every HeartbeatEvery and ends the session
// (cancel) when a pong does not come within HeartbeatTimeout.
func heartbeat(ctx context.Context, conn *websocket.Conn, cancel func()) {
	t := time.NewTicker(HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, pcancel := context.WithTimeout(ctx, HeartbeatTimeout)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil && ctx.Err() == nil {
				cancel()
				return
			}
		}
	}
}

// credit keeps the client within MaxOutstanding unwritten messages.
type credit struct {
	mu      sync.Mutex
	sent    uint64
	written uint64
	max     uint64
	changed chan struct{}
}

func newCredit() *credit {
	return &credit{max: MaxOutstanding, changed: make(chan struct{}, 1)}
}

func (c *credit) take(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.sent-c.written < c.max {
			c.sent++
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.changed:
		}
	}
}

func (c *credit) update(cp Capacity) {
	c.mu.Lock()
	c.written, c.max = cp.MessagesWritten, cp.MaxMessagesOutstanding
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}
