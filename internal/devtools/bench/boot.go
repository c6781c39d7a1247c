package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gantry-os/gantry/internal/boot/initrd"
	"github.com/gantry-os/gantry/internal/devtools/qemu"
)

// BootResult compares boot-to-API-ready with the floor. FirstBoot is a
// new node's boot, which also formats its data partitions and reads user
// data; Reboot is the same node booting again, the boot a node does for
// every update and restart.
type BootResult struct {
	Floor             []time.Duration
	FirstBoot, Reboot Boots
	Accel             string
}

// Boots are the times of a series of boots, from QEMU's start:
//   - API: the API is ready in the node (apiserver's console line, which
//     it writes to the console itself once it serves). The API does not
//     wait for the network.
//   - Online: network-online.target (netdog's "network online" line, also
//     written to the console directly).
//   - Bridge: the API answers over the bridge, from the host: a user's
//     view under gantry run, which needs the node's DHCP address too.
type Boots struct {
	API, Online, Bridge []time.Duration
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// Ratio is the median of a boot-to-API-ready series over the median floor.
func (r BootResult) Ratio(boots []time.Duration) float64 {
	return float64(median(boots)) / float64(median(r.Floor))
}

const poweroffInit = `package main

import "syscall"

func main() { syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF) }
`

// RunBoot boots the built image under QEMU until its API answers, against
// the floor: the same kernel, in the same QEMU, with a trivial initramfs
// whose /init powers off at once. Both use TCG so the ratio holds on
// machines with and without KVM.
func RunBoot(ctx context.Context, buildDir, dir string, runs int) (BootResult, error) {
	res := BootResult{Accel: "tcg"}
	src := filepath.Join(dir, "poweroff")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(poweroffInit), 0o644)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module poweroff\n\ngo 1.26\n"), 0o644)
	bin := filepath.Join(dir, "poweroff-init")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir, cmd.Env = src, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return res, fmt.Errorf("build the floor's init: %v: %s", err, out)
	}
	floorInitrd := filepath.Join(dir, "floor.img")
	if err := initrd.Build(ctx, initrd.Options{Init: bin, Out: floorInitrd, Epoch: time.Unix(0, 0)}); err != nil {
		return res, err
	}
	kernel := filepath.Join(buildDir, "vmlinuz")
	for i := 0; i < runs; i++ {
		start := time.Now()
		q := exec.CommandContext(ctx, "qemu-system-x86_64", "-nographic", "-m", "1024", "-smp", "1", "-accel", "tcg",
			"-kernel", kernel, "-initrd", floorInitrd, "-append", "console=ttyS0 panic=-1", "-no-reboot")
		q.Stdout, q.Stderr = io.Discard, io.Discard
		if err := q.Run(); err != nil {
			return res, fmt.Errorf("floor boot: %w", err)
		}
		res.Floor = append(res.Floor, time.Since(start))
	}
	for i := 0; i < runs; i++ {
		runDir := filepath.Join(dir, fmt.Sprintf("node%d", i))
		for _, boot := range []struct {
			fresh  bool
			series *Boots
		}{{true, &res.FirstBoot}, {false, &res.Reboot}} {
			b, err := bootToAPI(ctx, qemu.Options{BuildDir: buildDir, RunDir: runDir, Fresh: boot.fresh, Accel: "tcg", StopTimeout: time.Minute}, 8*time.Second)
			if err != nil {
				return res, err
			}
			boot.series.API = append(boot.series.API, b.api)
			boot.series.Online = append(boot.series.Online, b.online)
			boot.series.Bridge = append(boot.series.Bridge, b.bridge)
		}
		os.RemoveAll(runDir)
	}
	return res, nil
}

// Console lines that mark a boot's milestones.
const (
	apiReadyLine = "apiserver: the settings API is ready"
	onlineLine   = "netdog: network online:"
)

// marks records when the console first shows each of its lines.
type marks struct {
	mu    sync.Mutex
	start time.Time
	buf   []byte
	seen  map[string]time.Duration
}

func (m *marks) Write(p []byte) (int, error) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buf = append(m.buf, p...)
	for _, l := range []string{apiReadyLine, onlineLine} {
		if _, ok := m.seen[l]; !ok && bytes.Contains(m.buf, []byte(l)) {
			m.seen[l] = now.Sub(m.start)
		}
	}
	// Keep only the tail: a marker may straddle two writes.
	if len(m.buf) > 4096 {
		m.buf = append(m.buf[:0], m.buf[len(m.buf)-256:]...)
	}
	return len(p), nil
}

func (m *marks) get(l string) (time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.seen[l]
	return d, ok
}

type bootTimes struct{ api, online, bridge time.Duration }

// bootToAPI starts a node and times it from QEMU's start to its API being
// ready, to network-online, and to its API answering over the bridge. It
// then lets the node finish its boot (the configuration after the API,
// settle) and powers it off with the power button, so that the next boot
// of the same disk is a normal reboot. A stop that had to quit QEMU is an
// error: the reboot after it would replay journals and measure something
// else.
func bootToAPI(ctx context.Context, o qemu.Options, settle time.Duration) (bootTimes, error) {
	m := &marks{seen: map[string]time.Duration{}, start: time.Now()}
	o.Console = m
	n, err := qemu.Start(ctx, o)
	if err != nil {
		return bootTimes{}, err
	}
	var t bootTimes
	err = n.WaitForAPI(ctx)
	t.bridge = time.Since(m.start)
	if err == nil {
		select {
		case <-time.After(settle):
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	var ok1, ok2 bool
	t.api, ok1 = m.get(apiReadyLine)
	t.online, ok2 = m.get(onlineLine)
	if err == nil && (!ok1 || !ok2) {
		err = fmt.Errorf("the console lacks %q or %q:\n%s", apiReadyLine, onlineLine, tail(n.Console(), 30))
	}
	if stopErr := n.Stop(context.Background()); err == nil && stopErr != nil {
		err = stopErr
	}
	if err == nil && n.StopForced() {
		err = fmt.Errorf("the node did not power off by itself; console:\n%s", tail(n.Console(), 20))
	}
	if err != nil {
		return bootTimes{}, fmt.Errorf("boot to API: %w", err)
	}
	return t, nil
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// PrintBoot writes the result with the goal.
func PrintBoot(w io.Writer, r BootResult) {
	fmt.Fprintf(w, "floor (same kernel, initramfs that powers off at once), %s: %v, median %s\n", r.Accel, r.Floor, median(r.Floor).Round(time.Millisecond))
	for _, b := range []struct {
		name  string
		boots Boots
	}{{"first boot (formats DATA and PRIVATE, reads user data)", r.FirstBoot}, {"reboot of the same node", r.Reboot}} {
		fmt.Fprintf(w, "metal-dev %s, %s:\n", b.name, r.Accel)
		for _, m := range []struct {
			what   string
			series []time.Duration
			goal   string
		}{
			{"API ready in the node", b.boots.API, " (goal <= 4x)"},
			{"network-online.target", b.boots.Online, ""},
			{"API over the bridge", b.boots.Bridge, ""},
		} {
			fmt.Fprintf(w, "  %-28s median %7s = %.1fx floor%s  %v\n", m.what, median(m.series).Round(time.Millisecond), r.Ratio(m.series), m.goal, round(m.series))
		}
	}
}

func round(d []time.Duration) []time.Duration {
	out := make([]time.Duration, len(d))
	for i, v := range d {
		out[i] = v.Round(10 * time.Millisecond)
	}
	return out
}
