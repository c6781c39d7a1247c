package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// launch is everything the QEMU command line depends on, resolved.
type launch struct {
	opts      Options // resolved
	accel     string  // kvm or tcg
	cmdline   string
	disk      string
	diskFmt   string // raw or qcow2
	hostPort  int
	qmpSocket string
	// eventsSocket, when set, is a second QMP monitor for QEMU's events.
	eventsSocket string
}

// escape doubles commas, QEMU's escape inside an option value.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// args returns QEMU's arguments (without the program name). The serial
// console goes to QEMU's standard output.
func (l launch) args() []string {
	o := l.opts
	a := []string{
		"-name", "gantry,debug-threads=on",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-accel", l.accel,
	}
	if l.accel == AccelKVM {
		a = append(a, "-cpu", "host")
	}
	a = append(a,
		"-smp", strconv.Itoa(o.CPUs),
		"-m", strconv.Itoa(o.MemoryMiB),
		"-chardev", "stdio,id=console,signal=off",
		"-serial", "chardev:console",
	)
	bootIndex := ""
	if o.Firmware == FirmwareUEFI {
		// OVMF boots the disk; the selector adds l.cmdline to the chosen
		// set's command line.
		a = append(a, "-bios", o.OVMF)
		if l.cmdline != "" {
			a = append(a, "-fw_cfg", fmt.Sprintf("name=%s,string=%s", CmdlineFwCfg, escape(l.cmdline)))
		}
		bootIndex = ",bootindex=0"
	} else {
		a = append(a, "-kernel", o.Kernel, "-initrd", o.Initrd, "-append", l.cmdline)
	}
	a = append(a,
		"-drive", fmt.Sprintf("if=none,id=disk0,file=%s,format=%s,cache=writeback,discard=unmap", escape(l.disk), l.diskFmt),
	)
	switch o.DiskInterface {
	case DiskNVMe:
		a = append(a, "-device", "nvme,drive=disk0,serial=gantry-disk0"+bootIndex)
	default:
		a = append(a, "-device", "virtio-blk-pci,drive=disk0"+bootIndex)
	}
	a = append(a, extraDiskArgs(o)...)
	a = append(a,
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:%d", l.hostPort, o.GuestPort)+forwardArgs(o.Forwards),
		"-device", "virtio-net-pci,netdev=n0",
	)
	for i, nic := range o.NICs {
		a = append(a, nic.args(i+1, o.GuestPort)...)
	}
	a = append(a,
		// An entropy source, as clouds give (RDRAND or virtio-rng): QEMU's
		// TCG CPU has no RDRAND, and without it the guest's RNG is not ready
		// until seconds into the boot, stalling every getrandom(2) caller.
		"-device", "virtio-rng-pci",
		"-qmp", fmt.Sprintf("unix:%s,server=on,wait=off", escape(l.qmpSocket)),
	)
	if l.eventsSocket != "" {
		a = append(a, "-qmp", fmt.Sprintf("unix:%s,server=on,wait=off", escape(l.eventsSocket)))
	}
	if o.UserData != "" {
		a = append(a, "-fw_cfg", fmt.Sprintf("name=%s,file=%s", UserDataFwCfg, escape(o.UserData)))
	}
	if o.NetTOML != "" {
		a = append(a, "-fw_cfg", fmt.Sprintf("name=%s,file=%s", NetTOMLFwCfg, escape(o.NetTOML)))
	}
	if o.NoReboot {
		a = append(a, "-no-reboot")
	}
	return append(a, o.ExtraArgs...)
}

// kvmUsable reports whether /dev/kvm can be opened read-write, which is
// what QEMU needs for -accel kvm.
func kvmUsable(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// kvmProbeTimeout bounds the KVM probe. On a host with working KVM the
// probe guest exits in a fraction of a second; nested KVM that is present
// but unusably slow (it happens on some cloud VMs) takes seconds, and TCG
// is then the faster choice.
const kvmProbeTimeout = 1500 * time.Millisecond

// probeKVM boots a one-sector guest under KVM that writes to QEMU's
// isa-debug-exit port at once (QEMU then exits with status 3), and reports
// whether it did so within kvmProbeTimeout.
func probeKVM(ctx context.Context, qemu, dir string) error {
	img := filepath.Join(dir, "kvm-probe.img")
	sector := make([]byte, 1<<20)
	// mov al,1; out 0xf4,al; hlt; jmp $ — and the boot signature.
	copy(sector, []byte{0xB0, 0x01, 0xE6, 0xF4, 0xF4, 0xEB, 0xFE})
	sector[510], sector[511] = 0x55, 0xAA
	if err := os.WriteFile(img, sector, 0o644); err != nil {
		return fmt.Errorf("kvm probe: %w", err)
	}
	defer os.Remove(img)
	ctx, cancel := context.WithTimeout(ctx, kvmProbeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-accel", "kvm", "-nodefaults", "-no-user-config", "-display", "none",
		"-m", "16", "-drive", "file="+escape(img)+",format=raw,if=ide",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("kvm probe: a tiny guest did not finish within %v under KVM (nested or slow KVM)", kvmProbeTimeout)
	}
	return fmt.Errorf("kvm probe: %v: %s", err, bytes.TrimSpace(out))
}

// chooseAccel resolves "auto": KVM when kvmPath opens read-write and
// probe (nil: none) succeeds, else TCG; the string says why.
func chooseAccel(want, kvmPath string, probe func() error) (string, string, error) {
	switch want {
	case AccelKVM:
		if !kvmUsable(kvmPath) {
			return "", "", fmt.Errorf("accelerator kvm: cannot open %s read-write", kvmPath)
		}
		return AccelKVM, "asked for", nil
	case AccelTCG:
		return AccelTCG, "asked for", nil
	default:
		if !kvmUsable(kvmPath) {
			return AccelTCG, "cannot open " + kvmPath + " read-write", nil
		}
		if probe != nil {
			if err := probe(); err != nil {
				return AccelTCG, err.Error(), nil
			}
		}
		return AccelKVM, kvmPath + " works", nil
	}
}
