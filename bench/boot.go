package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/gantry-os/gantry/initrd"
	"github.com/gantry-os/gantry/qemu"
)

// BootResult compares boot-to-API-ready with the floor.
type BootResult struct {
	Floor, APIReady []time.Duration
	Accel           string
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// Ratio is the median boot-to-API-ready over the median floor.
func (r BootResult) Ratio() float64 {
	return float64(median(r.APIReady)) / float64(median(r.Floor))
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
		n, err := qemu.Start(ctx, qemu.Options{BuildDir: buildDir, RunDir: filepath.Join(dir, "node"), Fresh: true, Accel: "tcg", StopTimeout: time.Second})
		if err != nil {
			return res, err
		}
		start := time.Now()
		err = n.WaitForAPI(ctx)
		d := time.Since(start)
		n.Stop(context.Background())
		if err != nil {
			return res, fmt.Errorf("boot to API: %w", err)
		}
		res.APIReady = append(res.APIReady, d)
	}
	return res, nil
}

// PrintBoot writes the result with the goal.
func PrintBoot(w io.Writer, r BootResult) {
	fmt.Fprintf(w, "floor (same kernel, initramfs that powers off at once), %s: %v, median %s\n", r.Accel, r.Floor, median(r.Floor).Round(time.Millisecond))
	fmt.Fprintf(w, "metal-dev boot to API ready over the bridge, %s: %v, median %s\n", r.Accel, r.APIReady, median(r.APIReady).Round(time.Millisecond))
	fmt.Fprintf(w, "boot-to-API-ready / floor = %.1fx (goal <= 4x)\n", r.Ratio())
}
