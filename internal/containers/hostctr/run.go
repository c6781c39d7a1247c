package hostctr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"
)

// Namespace is the containerd namespace of host and bootstrap containers.
const Namespace = "default"

// DefaultSocket is host-containerd's socket.
const DefaultSocket = "/run/host-containerd/containerd.sock"

// RuncRoot is runc's state folder for host-containerd's containers, apart
// from the orchestrator containerd's /run/containerd/runc.
const RuncRoot = "/run/host-containerd/runc"

// Runner runs containers on host-containerd.
type Runner struct {
	Client *client.Client
	Puller Puller
	Paths  Paths
	Log    *slog.Logger
	// Stdout and Stderr receive the container's output (the journal, under
	// systemd).
	Stdout, Stderr io.Writer
	// Exists and Getenv are the host's (PathExists, os.LookupEnv).
	Exists func(string) bool
	Getenv func(string) (string, bool)
	// Ready is called once the container's process runs (host-ctr tells
	// systemd READY=1), with a one-line status.
	Ready func(status string)
	// StopTimeout is how long a stopped container has between SIGTERM and
	// SIGKILL (Bottlerocket: 20 s).
	StopTimeout time.Duration
}

// Status is what host-ctr last did with a container, kept in
// <Paths.Status>/<id>.json for the host-containers program to report.
type Status struct {
	State string    `json:"state"` // pulling, running, exited, failed
	Image string    `json:"image,omitempty"`
	PID   uint32    `json:"pid,omitempty"`
	Exit  *uint32   `json:"exit-code,omitempty"`
	Error string    `json:"error,omitempty"`
	Time  time.Time `json:"time"`
}

// StatusPath is the container's status file.
func (p Paths) StatusPath(c Container) string {
	return filepath.Join(p.Status, c.ID()+".json")
}

// ReadStatus reads a container's status file.
func (p Paths) ReadStatus(c Container) (Status, error) {
	var s Status
	b, err := os.ReadFile(p.StatusPath(c))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("status of %s: %w", c.ID(), err)
	}
	return s, nil
}

func (r Runner) setStatus(c Container, s Status) {
	s.Time = time.Now().UTC()
	b, _ := json.Marshal(s)
	path := r.Paths.StatusPath(c)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
		tmp := path + ".tmp"
		if err = os.WriteFile(tmp, b, 0o644); err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			r.Log.Warn("cannot write status", "path", path, "error", err)
		}
	}
}

// Run pulls the container's image, starts it and waits until it exits or
// ctx is cancelled (then it is stopped: SIGTERM, and SIGKILL after
// StopTimeout). The container and its snapshot are removed either way. A
// non-zero exit is an error.
func (r Runner) Run(ctx context.Context, c Container) (err error) {
	defer func() {
		if err != nil {
			r.setStatus(c, Status{State: "failed", Image: c.Source, Error: err.Error()})
		}
	}()
	if err := c.Validate(); err != nil {
		return err
	}
	ref, err := NormalizeRef(c.Source)
	if err != nil {
		return err
	}
	r.setStatus(c, Status{State: "pulling", Image: ref})
	img, err := r.Puller.Pull(ctx, ref)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(r.Paths.PersistentDir(c), 0o700); err != nil {
		return fmt.Errorf("persistent directory: %w", err)
	}
	if err := CleanUp(ctx, r.Client, c.ID()); err != nil {
		return err
	}
	imageOpt := oci.WithImageConfig(img)
	if len(c.Command) > 0 {
		imageOpt = oci.WithImageConfigArgs(img, c.Command)
	}
	specOpts := append([]oci.SpecOpts{imageOpt}, r.Paths.SpecOpts(c, r.Exists, r.Getenv)...)
	ctr, err := r.Client.NewContainer(ctx, c.ID(), client.WithImage(img), client.WithSnapshotter(Snapshotter),
		client.WithNewSnapshot(c.ID()+"-snapshot", img), client.WithNewSpec(specOpts...),
		client.WithRuntime(plugins.RuntimeRuncV2, &options.Options{Root: RuncRoot}))
	if err != nil {
		return fmt.Errorf("create container %s: %w", c.ID(), err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		defer cancel()
		if cerr := CleanUp(cctx, r.Client, c.ID()); cerr != nil {
			r.Log.Warn("clean-up failed", "container", c.ID(), "error", cerr)
		}
	}()
	task, err := ctr.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, r.Stdout, r.Stderr)))
	if err != nil {
		return fmt.Errorf("create task %s: %w", c.ID(), err)
	}
	waitCtx := context.WithoutCancel(ctx)
	exited, err := task.Wait(waitCtx)
	if err != nil {
		return fmt.Errorf("wait for task %s: %w", c.ID(), err)
	}
	if err := task.Start(ctx); err != nil {
		return fmt.Errorf("start task %s: %w", c.ID(), err)
	}
	r.setStatus(c, Status{State: "running", Image: ref, PID: task.Pid()})
	r.Log.Info("container running", "container", c.ID(), "image", ref, "pid", task.Pid())
	if r.Ready != nil {
		r.Ready(fmt.Sprintf("running %s (pid %d)", ref, task.Pid()))
	}
	var st client.ExitStatus
	stopped := false
	select {
	case st = <-exited:
	case <-ctx.Done():
		stopped = true
		st, err = stop(waitCtx, task, exited, r.StopTimeout)
		if err != nil {
			return err
		}
	}
	code, _, err := st.Result()
	if err != nil {
		return fmt.Errorf("task %s: %w", c.ID(), err)
	}
	r.setStatus(c, Status{State: "exited", Image: ref, Exit: &code})
	r.Log.Info("container exited", "container", c.ID(), "exit_code", code, "stopped", stopped)
	if code != 0 && !stopped {
		return fmt.Errorf("container %s exited with code %d", c.ID(), code)
	}
	return nil
}

// stop sends SIGTERM, then SIGKILL after grace.
func stop(ctx context.Context, task client.Task, exited <-chan client.ExitStatus, grace time.Duration) (client.ExitStatus, error) {
	if grace == 0 {
		grace = 20 * time.Second
	}
	if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
		return client.ExitStatus{}, fmt.Errorf("stop %s: %w", task.ID(), err)
	}
	select {
	case st := <-exited:
		return st, nil
	case <-time.After(grace):
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		return client.ExitStatus{}, fmt.Errorf("kill %s: %w", task.ID(), err)
	}
	select {
	case st := <-exited:
		return st, nil
	case <-time.After(25 * time.Second):
		return client.ExitStatus{}, fmt.Errorf("kill %s: no exit after SIGKILL", task.ID())
	}
}

// CleanUp kills a container's task and deletes the container with its
// snapshot. A missing container is not an error.
func CleanUp(ctx context.Context, c *client.Client, id string) error {
	ctr, err := c.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clean up %s: %w", id, err)
	}
	if task, err := ctr.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("clean up %s: delete task: %w", id, err)
		}
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("clean up %s: %w", id, err)
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("clean up %s: delete container: %w", id, err)
	}
	return nil
}
