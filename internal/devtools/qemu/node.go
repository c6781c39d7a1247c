package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gantry-os/gantry/internal/devtools/apibridge"
	"github.com/gantry-os/gantry/pkg/apiclient"
)

// DefaultKVMDevice is the device Accel "auto" and "kvm" open.
const DefaultKVMDevice = "/dev/kvm"

// Node is a running VM. Its methods are safe for concurrent use.
type Node struct {
	opts        Options
	accel       string
	disk        disk
	hostPort    int
	socketPath  string
	consolePath string
	qmpPath     string
	eventsPath  string // QMP socket the supervisor reads SHUTDOWN from (boot disk)

	// procMu guards proc and boot, which change at each reboot.
	procMu   sync.Mutex
	proc     *process
	boot     Boot
	stopping atomic.Bool // Stop was called: a reboot ends the node
	forced   atomic.Bool // Stop had to quit or kill QEMU (StopForced)

	lock      *os.File
	repo      *repoServer     // Options.UpdateRepo, served until cleanup
	registry  *registryServer // Options.Containers, run until cleanup
	consoleMu sync.Mutex      // serializes console and stderr writes with their readers
	exited    chan struct{}
	waitErr   error
	fwCancel  context.CancelFunc
	fwDone    chan struct{}
	stderr    *bytes.Buffer
	stopOnce  sync.Once
	stopErr   error
	stopFlag  chan struct{}
	cleanOnce sync.Once
}

// Start boots a node as opts describe and returns once QEMU is running and
// the host's API socket listens; the guest is still booting (WaitForAPI
// waits for it). ctx bounds the start-up only: the node runs until Stop, or
// until the guest powers off.
func Start(ctx context.Context, opts Options) (*Node, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	if _, err := exec.LookPath(o.QEMU); err != nil {
		return nil, fmt.Errorf("start node: %w (on Debian: apt-get install qemu-system-x86)", err)
	}
	if o.Boot == BootDisk {
		if _, err := exec.LookPath(o.Debugfs); err != nil {
			return nil, fmt.Errorf("start node: the boot loader reads BOOT partitions with debugfs: %w (on Debian: apt-get install e2fsprogs)", err)
		}
	}
	if err := os.MkdirAll(o.RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	lock, err := lockRunDir(o.RunDir)
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	n, err := start(ctx, o, lock)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("start node: %w", err)
	}
	return n, nil
}

func lockRunDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, RunLock), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock run directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another node is running in %s", dir)
		}
		return nil, fmt.Errorf("lock run directory: %w", err)
	}
	return f, nil
}

func start(ctx context.Context, o Options, lock *os.File) (_ *Node, err error) {
	log := o.Logger
	accel, why, err := chooseAccel(o.Accel, DefaultKVMDevice, func() error { return probeKVM(ctx, o.QEMU, o.RunDir) })
	if err != nil {
		return nil, err
	}
	log.Info("accelerator", "accel", accel, "why", why)
	d, err := prepareDisk(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := prepareExtraDisks(o); err != nil {
		return nil, err
	}
	var repo *repoServer
	if o.UpdateRepo != "" {
		if repo, err = startUpdateRepo(ctx, o, d.reused); err != nil {
			return nil, err
		}
		o.UserData = repo.userData
		defer func() {
			if err != nil {
				repo.close()
			}
		}()
	}
	var reg *registryServer
	if o.Containers != "" {
		if reg, err = startRegistry(ctx, o, d.reused); err != nil {
			return nil, err
		}
		o.UserData = reg.userData
		defer func() {
			if err != nil {
				reg.close()
			}
		}()
	}
	n := &Node{
		repo:        repo,
		registry:    reg,
		opts:        o,
		accel:       accel,
		disk:        d,
		socketPath:  filepath.Join(o.RunDir, RunAPISocket),
		consolePath: filepath.Join(o.RunDir, RunConsoleLog),
		qmpPath:     filepath.Join(o.RunDir, RunQMPSocket),
		lock:        lock,
		exited:      make(chan struct{}),
		stopFlag:    make(chan struct{}),
	}
	if o.Boot == BootDisk {
		n.eventsPath = filepath.Join(o.RunDir, RunQMPEventsSocket)
	}
	if err := n.loadBoot(ctx, 1); err != nil {
		return nil, err
	}
	// A picked port can be taken between picking and QEMU's bind: try again.
	const tries = 3
	for try := 1; ; try++ {
		port := o.HostPort
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		n.hostPort = port
		err = n.launch(ctx)
		if err == nil {
			break
		}
		var pe portError
		if !errors.As(err, &pe) || o.HostPort != 0 || try == tries {
			return nil, err
		}
		log.Info("host port taken; trying another", "port", port)
	}
	go n.supervise()
	if err := n.serveSocket(); err != nil {
		n.stopping.Store(true)
		n.kill()
		return nil, err
	}
	log.Info("node started", "accel", accel, "disk", d.path, "host_port", n.hostPort,
		"socket", n.socketPath, "console", n.consolePath, "boot", n.Boot().String())
	return n, nil
}

// portError is QEMU failing to set up the host forward.
type portError struct{ error }

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// launch starts QEMU for the current boot (n.boot) and waits until its QMP
// monitor answers, which QEMU does only once every device and the host
// forward are set up. The first boot starts the console and QEMU logs
// afresh; a reboot appends to them.
func (n *Node) launch(ctx context.Context) error {
	o := n.opts
	boot := n.Boot()
	os.Remove(n.qmpPath)
	if n.eventsPath != "" {
		os.Remove(n.eventsPath)
	}
	lo := o
	lo.Kernel, lo.Initrd = boot.Kernel, boot.Initrd
	if o.Boot == BootDisk {
		// A reboot ends QEMU, so that the boot loader chooses again.
		lo.NoReboot = true
	}
	l := launch{opts: lo, accel: n.accel, cmdline: boot.Cmdline, disk: n.disk.path, diskFmt: n.disk.format,
		hostPort: n.hostPort, qmpSocket: n.qmpPath, eventsSocket: n.eventsPath}
	args := l.args()

	mode := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if boot.N > 1 {
		mode = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	console, err := os.OpenFile(n.consolePath, mode, 0o644)
	if err != nil {
		return fmt.Errorf("console log: %w", err)
	}
	qlog, err := os.OpenFile(filepath.Join(o.RunDir, RunQEMULog), mode, 0o644)
	if err != nil {
		console.Close()
		return fmt.Errorf("qemu log: %w", err)
	}
	fmt.Fprintf(qlog, "%s %s\n", o.QEMU, shellQuote(args))

	// Not CommandContext: the VM outlives ctx.
	cmd := exec.Command(o.QEMU, args...)
	cmd.Dir = o.RunDir
	cmd.Stdin = nil
	var w io.Writer = &lockedWriter{mu: &n.consoleMu, w: console}
	if o.Console != nil {
		w = io.MultiWriter(w, ignoreErrors{o.Console})
	}
	cmd.Stdout = w
	if boot.Set != "" {
		fmt.Fprintf(w, "gantry run: boot loader: %s\n", boot)
	}
	n.stderr = &bytes.Buffer{}
	cmd.Stderr = io.MultiWriter(qlog, &lockedWriter{mu: &n.consoleMu, w: n.stderr})
	// Its own process group, so the terminal's Ctrl-C reaches only us and
	// the guest is powered off in order; and SIGTERM if we die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		console.Close()
		qlog.Close()
		return fmt.Errorf("run %s: %w", o.QEMU, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	n.procMu.Lock()
	n.proc = p
	n.procMu.Unlock()
	go func() {
		p.err = cmd.Wait()
		console.Close()
		qlog.Close()
		close(p.done)
	}()

	// Wait for QMP: it answers once QEMU's set-up is done.
	deadline := time.Now().Add(60 * time.Second)
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, qerr := qmpCommand(qctx, n.qmpPath, "query-status")
		cancel()
		if qerr == nil {
			if n.eventsPath != "" {
				n.watchShutdown(p)
			}
			return nil
		}
		select {
		case <-p.done:
			msg := strings.TrimSpace(n.stderrText())
			if strings.Contains(msg, "hostfwd") || strings.Contains(msg, "host forwarding") {
				return portError{fmt.Errorf("qemu could not forward 127.0.0.1:%d: %s", n.hostPort, msg)}
			}
			return fmt.Errorf("qemu exited at start (%v): %s", p.err, msg)
		case <-ctx.Done():
			n.kill()
			return fmt.Errorf("waiting for qemu: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.kill()
			return fmt.Errorf("qemu's monitor did not answer within 60s: %w", qerr)
		}
	}
}

func (n *Node) stderrText() string {
	n.consoleMu.Lock()
	defer n.consoleMu.Unlock()
	return n.stderr.String()
}

// serveSocket listens on the run directory's api.sock and forwards each
// connection to the host port.
func (n *Node) serveSocket() error {
	if err := os.Remove(n.socketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	ln, err := net.Listen("unix", n.socketPath)
	if err != nil {
		return fmt.Errorf("host API socket: %w", err)
	}
	if err := os.Chmod(n.socketPath, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("host API socket: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.fwCancel = cancel
	n.fwDone = make(chan struct{})
	fw := &apibridge.Forwarder{
		Dial:   apibridge.TCPDialer(net.JoinHostPort("127.0.0.1", strconv.Itoa(n.hostPort))),
		Logger: n.opts.Logger,
	}
	go func() {
		defer close(n.fwDone)
		if err := fw.Serve(ctx, ln); err != nil {
			n.opts.Logger.Error("host API socket failed", "error", err)
		}
	}()
	// The node's end is the forwarder's end.
	go func() {
		<-n.exited
		n.cleanup()
	}()
	return nil
}

// cleanup stops the forwarder and releases the run directory.
func (n *Node) cleanup() {
	n.cleanOnce.Do(func() {
		if n.fwCancel != nil {
			n.fwCancel()
			<-n.fwDone
		}
		n.repo.close()
		n.registry.close()
		n.lock.Close()
	})
}

// UpdateRepo is the local update repository served to the node
// (Options.UpdateRepo), or nil.
func (n *Node) UpdateRepo() *UpdateRepo {
	if n.repo == nil {
		return nil
	}
	info := n.repo.info
	return &info
}

// Registry is the local registry run for the node (Options.Containers),
// or nil.
func (n *Node) Registry() *LocalRegistry {
	if n.registry == nil {
		return nil
	}
	info := n.registry.info
	return &info
}

// SocketPath is the host's Unix socket for the node's settings API.
func (n *Node) SocketPath() string { return n.socketPath }

// ConsolePath is the serial console's log file.
func (n *Node) ConsolePath() string { return n.consolePath }

// Console returns what the serial console has printed so far.
func (n *Node) Console() string {
	n.consoleMu.Lock()
	defer n.consoleMu.Unlock()
	b, _ := os.ReadFile(n.consolePath)
	return string(b)
}

// HostPort is the host's end of the forward to the guest's api-bridge, on
// 127.0.0.1.
func (n *Node) HostPort() int { return n.hostPort }

// Accel is the accelerator QEMU runs with: kvm or tcg.
func (n *Node) Accel() string { return n.accel }

// Cmdline is the kernel command line of the node's current boot.
func (n *Node) Cmdline() string { return n.Boot().Cmdline }

// DiskPath is the node's writable disk in the run directory.
func (n *Node) DiskPath() string { return n.disk.path }

// DiskReused tells whether the disk was kept from a previous run, so that
// this is not the node's first boot (and user data is not read again).
func (n *Node) DiskReused() bool { return n.disk.reused }

// RunDir is the node's run directory (absolute).
func (n *Node) RunDir() string { return n.opts.RunDir }

// PID is the process ID of the current boot's QEMU.
func (n *Node) PID() int {
	n.procMu.Lock()
	defer n.procMu.Unlock()
	return n.proc.cmd.Process.Pid
}

// Exited is closed when the node has ended: QEMU exited and no reboot
// follows (see Options.Boot and NoReboot).
func (n *Node) Exited() <-chan struct{} { return n.exited }

// Wait waits for the node to end and returns how it ended: nil for a clean
// exit (the guest powered off, or Stop).
func (n *Node) Wait() error {
	<-n.exited
	n.cleanup()
	if n.waitErr != nil {
		return fmt.Errorf("qemu: %w", n.waitErr)
	}
	return nil
}

// WaitForAPI waits until GET /os through the host socket answers 200. It
// fails early, with the console's last lines, when QEMU exits.
//
// It starts a try every apiPollInterval without waiting for the previous
// one: a connection made before the guest's network is up hangs in QEMU's
// user network (its SYN to the guest goes unanswered and is retried with
// back-off), and waiting for it would hide the API's arrival for seconds.
func (n *Node) WaitForAPI(ctx context.Context) error {
	client := apiclient.New(n.socketPath)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan error, maxAPITries)
	inFlight := 0
	var last error
	tick := time.NewTicker(apiPollInterval)
	defer tick.Stop()
	try := func() {
		inFlight++
		go func() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			code, body, err := client.Do(rctx, "GET", "/os", nil)
			if err == nil && code != 200 {
				err = fmt.Errorf("GET /os: status %d: %s", code, bytes.TrimSpace(body))
			}
			results <- err
		}()
	}
	try()
	for {
		select {
		case err := <-results:
			inFlight--
			if err == nil {
				return nil
			}
			last = err
		case <-tick.C:
			if inFlight < maxAPITries {
				try()
			}
		case <-n.exited:
			return fmt.Errorf("the VM exited before its API answered (%v); console:\n%s", n.waitErr, tail(n.Console(), 30))
		case <-ctx.Done():
			return fmt.Errorf("waiting for the node's API: %w (last try: %v); console:\n%s", ctx.Err(), last, tail(n.Console(), 30))
		}
	}
}

// WaitForSettings waits until the node's live settings are not empty: its
// boot has committed the launch transaction (defaults, and at a first boot
// the user data), so that reads of the settings, and updates, see the
// node's configuration. Call it after WaitForAPI. It fails early when QEMU
// exits. A node whose user data was refused never commits (see
// console.log), so bound ctx.
func (n *Node) WaitForSettings(ctx context.Context) error {
	return waitForSettings(ctx, apiclient.New(n.socketPath), n.exited)
}

func waitForSettings(ctx context.Context, c *apiclient.Client, exited <-chan struct{}) error {
	tick := time.NewTicker(settingsPollInterval)
	defer tick.Stop()
	var last error
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		code, body, err := c.Do(rctx, "GET", "/settings", nil)
		cancel()
		var live map[string]any
		switch {
		case err != nil && ctx.Err() != nil:
			// ctx's end cut the read short: keep the last answer's reason.
		case err != nil:
			last = err
		case code != 200:
			last = fmt.Errorf("GET /settings: status %d: %s", code, bytes.TrimSpace(body))
		case json.Unmarshal(body, &live) != nil:
			last = fmt.Errorf("GET /settings: not a JSON object: %.100s", body)
		case len(live) > 0:
			return nil
		default:
			last = errors.New("no settings committed yet")
		}
		select {
		case <-tick.C:
		case <-exited:
			return errors.New("the VM exited before its settings were committed")
		case <-ctx.Done():
			return fmt.Errorf("waiting for the node's settings: %w (last: %v)", ctx.Err(), last)
		}
	}
}

// settingsPollInterval is how often WaitForSettings reads the settings.
const settingsPollInterval = 250 * time.Millisecond

// apiPollInterval is how often WaitForAPI starts a try, and maxAPITries how
// many may be open at once. Short, since the boot benchmark measures
// through it; a failed try costs the guest one connection to api-bridge.
const (
	apiPollInterval = 100 * time.Millisecond
	maxAPITries     = 32
)

// powerdownRepeat is how often Stop presses the power button again.
const powerdownRepeat = 3 * time.Second

// Stop powers the VM off: it asks the guest (QMP system_powerdown, the
// ACPI power button, pressed again every powerdownRepeat) and waits up to
// Options.StopTimeout or until ctx is done, then quits QEMU, then kills it. It returns once QEMU has exited;
// the error says only whether QEMU could be ended at all.
func (n *Node) Stop(ctx context.Context) error {
	n.stopping.Store(true)
	n.stopOnce.Do(func() { n.stopErr = n.stop(ctx) })
	return n.stopErr
}

// StopForced reports whether Stop ended QEMU itself (QMP quit, then
// SIGKILL) because the guest had not powered off after system_powerdown
// within Options.StopTimeout, or Stop's ctx ended first. It is false
// before Stop, and when the guest powered off by itself.
func (n *Node) StopForced() bool { return n.forced.Load() }

func (n *Node) stop(ctx context.Context) error {
	log := n.opts.Logger
	defer n.cleanup()
	select {
	case <-n.exited:
		return nil
	default:
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := qmpCommand(qctx, n.qmpPath, "system_powerdown")
	cancel()
	if err != nil {
		log.Warn("could not ask the guest to power off", "error", err)
	} else {
		log.Info("asked the guest to power off", "timeout", n.opts.StopTimeout)
		asked := time.Now()
		t := time.NewTimer(n.opts.StopTimeout)
		defer t.Stop()
		// A press is an event, not a state: one made while the guest is
		// still booting, before power-button.service watches the key, is
		// lost. Press again now and then; once the guest is shutting down
		// more presses change nothing.
		again := time.NewTicker(powerdownRepeat)
		defer again.Stop()
	wait:
		for {
			select {
			case <-n.exited:
				log.Info("the guest powered off", "after", time.Since(asked).Round(time.Millisecond))
				return nil
			case <-again.C:
				qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				qmpCommand(qctx, n.qmpPath, "system_powerdown")
				cancel()
			case <-t.C:
				log.Warn("the guest did not power off in time; quitting QEMU")
				break wait
			case <-ctx.Done():
				log.Warn("stop interrupted; quitting QEMU")
				break wait
			}
		}
	}
	n.forced.Store(true)
	qctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	_, err = qmpCommand(qctx, n.qmpPath, "quit")
	cancel()
	if err == nil {
		select {
		case <-n.exited:
			return nil
		case <-time.After(10 * time.Second):
		}
	}
	n.kill()
	select {
	case <-n.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("stop node: qemu (pid %d) did not exit after SIGKILL", n.PID())
	}
}

func (n *Node) kill() {
	n.procMu.Lock()
	defer n.procMu.Unlock()
	if n.proc != nil && n.proc.cmd.Process != nil {
		n.proc.cmd.Process.Kill()
	}
}

// lockedWriter serializes writes with Console's reads.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// ignoreErrors keeps a failing echo (a closed terminal) from stopping the
// console log.
type ignoreErrors struct{ w io.Writer }

func (i ignoreErrors) Write(p []byte) (int, error) {
	i.w.Write(p)
	return len(p), nil
}

// shellQuote renders args for the log, quoting where a shell would need it.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}();&|<>~#!") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
