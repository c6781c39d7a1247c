package exec

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/gantry-os/gantry/pkg/apiclient"
)

// hostExecer runs commands as processes of this machine (target "host"):
// the protocol's tests drive real processes, with a real pseudo-terminal
// for TTY sessions; host-containerd's Execer is tested on the node.
type hostExecer struct {
	mu   sync.Mutex
	pids []int
}

func (h *hostExecer) Start(_ context.Context, target string, command []string, tty *apiclient.Size) (Process, error) {
	if target != "host" {
		return nil, UserError{errors.New("no container " + target)}
	}
	cmd := osexec.Command(command[0], command[1:]...)
	p := &hostProcess{cmd: cmd}
	if tty != nil {
		f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: tty.Rows, Cols: tty.Cols})
		if err != nil {
			return nil, err
		}
		p.tty, p.in, p.out = f, f, f
	} else {
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		w.Close()
		p.in, p.out = in, r
	}
	h.mu.Lock()
	h.pids = append(h.pids, cmd.Process.Pid)
	h.mu.Unlock()
	return p, nil
}

type hostProcess struct {
	cmd *osexec.Cmd
	tty *os.File
	in  io.WriteCloser
	out io.Reader
}

func (p *hostProcess) Stdin() io.WriteCloser {
	if p.tty != nil {
		return eofWriter{p.tty}
	}
	return p.in
}

// eofWriter ends a terminal's input with ^D instead of closing it.
type eofWriter struct{ f *os.File }

func (e eofWriter) Write(b []byte) (int, error) { return e.f.Write(b) }
func (e eofWriter) Close() error                { _, err := e.f.Write([]byte{4}); return err }

func (p *hostProcess) Output() io.Reader { return ttyEOF{p.out} }

// ttyEOF reads a terminal's EIO after the process as the end.
type ttyEOF struct{ r io.Reader }

func (t ttyEOF) Read(b []byte) (int, error) {
	n, err := t.r.Read(b)
	if errors.Is(err, syscall.EIO) {
		err = io.EOF
	}
	return n, err
}

func (p *hostProcess) Resize(_ context.Context, s apiclient.Size) error {
	return pty.Setsize(p.tty, &pty.Winsize{Rows: s.Rows, Cols: s.Cols})
}

func (p *hostProcess) Signal(_ context.Context, sig syscall.Signal) error {
	return p.cmd.Process.Signal(sig)
}

func (p *hostProcess) Wait(context.Context) (int, error) {
	err := p.cmd.Wait()
	var ee *osexec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}

func (p *hostProcess) Close() {
	if p.tty != nil {
		p.tty.Close()
	}
}

// serve runs the exec route on a real Unix socket.
func serve(t *testing.T, ex Execer) *apiclient.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { Serve(w, r, ex, log) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return apiclient.New(sock)
}

func TestExecPipes(t *testing.T) {
	c := serve(t, &hostExecer{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name, stdin string
		command     []string
		want        string
		code        int
	}{
		{"stdin to stdout, exit code", "hello\n", []string{"sh", "-c", "cat; echo done; echo err >&2; exit 7"}, "hello\ndone\nerr\n", 7},
		{"no input", "", []string{"echo", "a", "b c"}, "a b c\n", 0},
		{"killed by a signal", "", []string{"sh", "-c", "kill -TERM $$"}, "", 128 + 15},
		{"arguments with any bytes", "", []string{"printf", "%s", "ünï\tcode"}, "ünï\tcode", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code, err := c.Exec(ctx, apiclient.ExecOptions{Target: "host", Command: tc.command, Stdin: strings.NewReader(tc.stdin), Stdout: &out})
			if err != nil || code != tc.code || out.String() != tc.want {
				t.Errorf("code %d, output %q, %v; want %d, %q", code, out.String(), err, tc.code, tc.want)
			}
		})
	}
}

// TestExecCapacity sends far more input messages than may be outstanding:
// the client waits for the server's capacity reports and nothing is lost.
func TestExecCapacity(t *testing.T) {
	c := serve(t, &hostExecer{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	go func() {
		for range 3 * apiclient.MaxOutstanding {
			pw.Write([]byte("0123456789\n"))
		}
		pw.Close()
	}()
	var out bytes.Buffer
	code, err := c.Exec(ctx, apiclient.ExecOptions{Target: "host", Command: []string{"wc", "-l"}, Stdin: pr, Stdout: &out})
	if err != nil || code != 0 || strings.TrimSpace(out.String()) != "3072" {
		t.Errorf("code %d, output %q, %v", code, out.String(), err)
	}
}

func TestExecTTY(t *testing.T) {
	c := serve(t, &hostExecer{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resize := make(chan apiclient.Size, 1)
	pr, pw := io.Pipe()
	var mu sync.Mutex
	var out bytes.Buffer
	w := writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) })
	seen := func(s string) bool { mu.Lock(); defer mu.Unlock(); return strings.Contains(out.String(), s) }
	done := make(chan struct{})
	var code int
	var err error
	go func() {
		defer close(done)
		code, err = c.Exec(ctx, apiclient.ExecOptions{Target: "host", TTY: &apiclient.Size{Rows: 24, Cols: 80}, Resize: resize,
			Command: []string{"sh", "-c", "stty size; tty; read x; stty size; exit 3"}, Stdin: pr, Stdout: w})
	}()
	waitFor(t, func() bool { return seen("24 80") && seen("/dev/pts/") })
	resize <- apiclient.Size{Rows: 30, Cols: 100}
	time.Sleep(200 * time.Millisecond)
	pw.Write([]byte("\n"))
	<-done
	if err != nil || code != 3 || !seen("30 100") {
		t.Errorf("code %d, %v, output %q", code, err, out.String())
	}
}

// TestExecClientGone: a client that leaves ends its process.
func TestExecClientGone(t *testing.T) {
	h := &hostExecer{}
	c := serve(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Exec(ctx, apiclient.ExecOptions{Target: "host", Command: []string{"sleep", "100"}, Stdout: io.Discard})
	}()
	waitFor(t, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(h.pids) == 1 })
	cancel()
	<-done
	pid := h.pids[0]
	waitFor(t, func() bool { return syscall.Kill(pid, 0) != nil })
}

func TestExecRefusals(t *testing.T) {
	c := serve(t, &hostExecer{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.Exec(ctx, apiclient.ExecOptions{Target: "nothing", Command: []string{"true"}, Stdout: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "no container nothing") {
		t.Errorf("unknown target: %v", err)
	}
	_, err = c.Exec(ctx, apiclient.ExecOptions{Target: "host", Stdout: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "needs a target and a command") {
		t.Errorf("no command: %v", err)
	}
}

func TestMessagesWire(t *testing.T) {
	b, err := (apiclient.ClientMessage{Initialize: &apiclient.Initialize{Target: "admin", Command: []apiclient.Arg{"ls"}}}).MarshalJSON()
	if err != nil || string(b) != `{"Initialize":{"command":[{"Unix":[108,115]}],"target":"admin","tty":null}}` {
		t.Errorf("Initialize on the wire: %s %v", b, err)
	}
	if b, _ := (apiclient.ClientMessage{ContentComplete: true}).MarshalJSON(); string(b) != `"ContentComplete"` {
		t.Errorf("ContentComplete on the wire: %s", b)
	}
	var m apiclient.ClientMessage
	if err := m.UnmarshalJSON([]byte(`{"Initialize":{"command":["ls",{"Unix":[45,108]}],"target":"admin","tty":{"size":{"rows":5,"cols":9}}}}`)); err != nil ||
		len(m.Initialize.Command) != 2 || m.Initialize.Command[1] != "-l" || m.Initialize.TTY.Size.Cols != 9 {
		t.Errorf("read Initialize: %+v %v", m.Initialize, err)
	}
	for _, bad := range []string{`"Nope"`, `{}`, `{"Winch":{"rows":1,"cols":1},"Initialize":{"command":[],"target":"a"}}`, `{"Initialize":{"command":[{"Unix":[300]}],"target":"a"}}`} {
		if err := m.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
