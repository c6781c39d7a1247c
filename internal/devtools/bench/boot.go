package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gantry-os/gantry/internal/boot/initrd"
	"github.com/gantry-os/gantry/internal/devtools/qemu"
)

// BootResult compares boot-to-API-ready with the floor. FirstBoot is a
// new node's boot, which also formats its data partitions and reads user
// data; Reboot is the same node booting again, the boot a node does for
// every update and restart.
type BootResult struct {
	Floor, FirstBoot, Reboot []time.Duration
	Accel                    string
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
			series *[]time.Duration
		}{{true, &res.FirstBoot}, {false, &res.Reboot}} {
			d, err := bootToAPI(ctx, qemu.Options{BuildDir: buildDir, RunDir: runDir, Fresh: boot.fresh, Accel: "tcg", StopTimeout: time.Minute}, 8*time.Second)
			if err != nil {
				return res, err
			}
			*boot.series = append(*boot.series, d)
		}
		os.RemoveAll(runDir)
	}
	return res, nil
}

// bootToAPI starts a node and times it from QEMU's start to its API
// answering over the bridge. It then lets the node finish its boot (the
// configuration after the API, settle) and powers it off with the power
// button, so that the next boot of the same disk is a normal reboot. A stop
// that had to quit QEMU is an error: the reboot after it would replay
// journals and measure something else.
func bootToAPI(ctx context.Context, o qemu.Options, settle time.Duration) (time.Duration, error) {
	n, err := qemu.Start(ctx, o)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	err = n.WaitForAPI(ctx)
	d := time.Since(start)
	if err == nil {
		select {
		case <-time.After(settle):
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if stopErr := n.Stop(context.Background()); err == nil && stopErr != nil {
		err = stopErr
	}
	if err == nil && n.StopForced() {
		err = fmt.Errorf("the node did not power off by itself; console:\n%s", tail(n.Console(), 20))
	}
	if err != nil {
		return 0, fmt.Errorf("boot to API: %w", err)
	}
	return d, nil
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
		boots []time.Duration
	}{{"first boot (formats DATA and PRIVATE, reads user data)", r.FirstBoot}, {"reboot of the same node", r.Reboot}} {
		fmt.Fprintf(w, "metal-dev %s, boot to API ready over the bridge, %s: %v, median %s\n", b.name, r.Accel, b.boots, median(b.boots).Round(time.Millisecond))
		fmt.Fprintf(w, "  boot-to-API-ready / floor = %.1fx (goal <= 4x)\n", r.Ratio(b.boots))
	}
}
