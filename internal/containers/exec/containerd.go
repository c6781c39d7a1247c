package exec

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gantry-os/gantry/pkg/apiclient"
)

// Containerd runs commands in host-containerd's containers (task exec),
// as Bottlerocket's apiserver does through ctr.
type Containerd struct {
	Socket, Namespace string
}

// Start implements Execer.
func (c Containerd) Start(ctx context.Context, target string, command []string, tty *apiclient.Size) (Process, error) {
	cl, err := client.New(c.Socket, client.WithDefaultNamespace(c.Namespace), client.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to host-containerd: %w", err)
	}
	p, err := c.start(ctx, cl, target, command, tty)
	if err != nil {
		cl.Close()
		return nil, err
	}
	return p, nil
}

func (c Containerd) start(ctx context.Context, cl *client.Client, target string, command []string, tty *apiclient.Size) (*ctrProcess, error) {
	ctr, err := cl.LoadContainer(ctx, target)
	if errdefs.IsNotFound(err) {
		return nil, UserError{fmt.Errorf("no container %q on host-containerd (host containers go by their name, bootstrap containers by boot.<name>)", target)}
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", target, err)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return nil, UserError{fmt.Errorf("container %s is not running", target)}
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return nil, fmt.Errorf("container %s: spec: %w", target, err)
	}
	ps := *spec.Process
	ps.Args = command
	ps.Terminal = tty != nil
	if tty != nil {
		ps.Env = append(append([]string(nil), ps.Env...), "TERM=screen")
		// The terminal has its size from the start (runc sets it before the
		// process runs), not only after the first resize.
		ps.ConsoleSize = &specs.Box{Height: uint(tty.Rows), Width: uint(tty.Cols)}
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	opts := []cio.Opt{cio.WithStreams(inR, outW, outW)}
	if tty != nil {
		opts = append(opts, cio.WithTerminal)
	}
	id := "apiexec-" + rand.Text()[:16]
	proc, err := task.Exec(ctx, id, &ps, cio.NewCreator(opts...))
	if err != nil {
		return nil, UserError{fmt.Errorf("exec in %s: %w", target, err)}
	}
	p := &ctrProcess{cl: cl, proc: proc, in: inW, inR: inR, out: outR, outW: outW, tty: tty != nil}
	if p.exited, err = proc.Wait(context.WithoutCancel(ctx)); err != nil {
		p.Close()
		return nil, fmt.Errorf("exec in %s: %w", target, err)
	}
	if err := proc.Start(ctx); err != nil {
		p.Close()
		return nil, UserError{fmt.Errorf("exec in %s: %w", target, err)}
	}
	if tty != nil {
		_ = p.Resize(ctx, *tty)
	}
	return p, nil
}

type ctrProcess struct {
	cl     *client.Client
	proc   client.Process
	in     *io.PipeWriter
	inR    *io.PipeReader
	out    *io.PipeReader
	outW   *io.PipeWriter
	exited <-chan client.ExitStatus
	// tty: the process has a terminal, whose input the shim shuts down
	// (a hangup, SIGHUP) when its stdin FIFO ends.
	tty bool
}

func (p *ctrProcess) Stdin() io.WriteCloser { return stdinCloser{p} }
func (p *ctrProcess) Output() io.Reader     { return p.out }

// stdinCloser ends the process's input: the pipe, and the shim's FIFO.
// With a terminal it does nothing: the shim would hang the terminal up,
// killing the command with SIGHUP, where a terminal's end of input is the
// user's ^D; the pipe stays open until the process is gone (Close).
type stdinCloser struct{ p *ctrProcess }

func (s stdinCloser) Write(b []byte) (int, error) { return s.p.in.Write(b) }
func (s stdinCloser) Close() error {
	if s.p.tty {
		return nil
	}
	s.p.in.Close()
	return s.p.proc.CloseIO(context.Background(), client.WithStdinCloser)
}

func (p *ctrProcess) Resize(ctx context.Context, s apiclient.Size) error {
	return p.proc.Resize(ctx, uint32(s.Cols), uint32(s.Rows))
}

func (p *ctrProcess) Signal(ctx context.Context, sig syscall.Signal) error {
	return p.proc.Kill(ctx, sig)
}

func (p *ctrProcess) Wait(ctx context.Context) (int, error) {
	var st client.ExitStatus
	select {
	case st = <-p.exited:
	case <-ctx.Done():
		return 1, ctx.Err()
	}
	code, _, err := st.Result()
	// The output copy ends once the process's side is closed.
	if io := p.proc.IO(); io != nil {
		io.Wait()
	}
	p.outW.Close()
	return int(code), err
}

func (p *ctrProcess) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = p.proc.Delete(ctx, client.WithProcessKill)
	p.in.Close()
	p.inR.Close()
	p.outW.Close()
	p.cl.Close()
}
