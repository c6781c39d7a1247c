package qemu

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestUEFIOptions(t *testing.T) {
	bd := buildDir(t, "gantry-metal-dev-x86_64-0.1.0-abc.img")
	ovmf := filepath.Join(t.TempDir(), "OVMF.fd")
	os.WriteFile(ovmf, []byte("firmware"), 0o644)
	o, err := Options{BuildDir: bd, RunDir: "run/x", Firmware: FirmwareUEFI, OVMF: ovmf}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if o.Boot != BootFirmware || o.Kernel != "" || o.Initrd != "" || o.Cmdline != "" || o.DiskMode != "" {
		t.Errorf("uefi resolved to %+v", o)
	}
	if o, err := (Options{BuildDir: bd, RunDir: "run/x"}).resolve(); err != nil || o.Firmware != FirmwareBIOS || o.Boot != BootDisk {
		t.Errorf("default firmware: %q boot %q, %v", o.Firmware, o.Boot, err)
	}
	for _, tc := range []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"a kernel with uefi", Options{Kernel: filepath.Join(bd, BuildKernel), Firmware: FirmwareUEFI, OVMF: ovmf}, "firmware uefi: the firmware boots the disk"},
		{"boot disk with uefi", Options{Boot: BootDisk, Firmware: FirmwareUEFI, OVMF: ovmf}, "another boot source does not apply"},
		{"no OVMF", Options{Firmware: FirmwareUEFI, OVMF: filepath.Join(bd, "none.fd")}, "apt-get install ovmf"},
		{"unknown firmware", Options{Firmware: "coreboot"}, `firmware "coreboot": want bios or uefi`},
		{"boot firmware without uefi", Options{Boot: BootFirmware}, "boot firmware: needs firmware uefi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.BuildDir, tc.opts.RunDir = bd, "run/x"
			if _, err := tc.opts.resolve(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("resolve: %v, want %q", err, tc.wantErr)
			}
		})
	}

	// QEMU's arguments: OVMF, no kernel, the selector's extra parameters in
	// fw_cfg (commas escaped), the disk first in the boot order.
	o.MemoryMiB, o.CPUs, o.GuestPort, o.DiskInterface = 1024, 1, 8081, DiskVirtio
	l := launch{opts: o, accel: AccelTCG, cmdline: FirmwareCmdline(false, []string{"console=ttyS0,115200n8 x=1"}),
		disk: "/r/disk.qcow2", diskFmt: "qcow2", hostPort: 40123, qmpSocket: "/r/qmp.sock"}
	args := l.args()
	for _, pair := range [][2]string{
		{"-bios", ovmf},
		{"-fw_cfg", "name=opt/gantry/cmdline,string=gantry.api-bridge console=ttyS0,,115200n8 x=1"},
		{"-device", "virtio-blk-pci,drive=disk0,bootindex=0"},
	} {
		if i := slices.Index(args, pair[0]); i < 0 || !slices.Contains(args[i:], pair[1]) {
			t.Errorf("missing %q %q in %q", pair[0], pair[1], args)
		}
	}
	for _, no := range []string{"-kernel", "-initrd", "-append", "-no-reboot"} {
		if slices.Contains(args, no) {
			t.Errorf("unexpected %s in %q", no, args)
		}
	}
	if got := FirmwareCmdline(true, nil); got != "" {
		t.Errorf("FirmwareCmdline without bridge or extras = %q", got)
	}
	if b := (Boot{N: 1, Firmware: ovmf}).String(); !strings.Contains(b, "UEFI firmware "+ovmf) {
		t.Errorf("Boot.String() = %q", b)
	}
}
