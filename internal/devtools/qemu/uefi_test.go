package qemu

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/testsupport"
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

// TestBootUEFI boots the metal-dev image of an earlier `gantry build`
// (build/metal-dev, or GANTRY_BUILD_DIR) through the whole UEFI chain:
// OVMF, systemd-boot on the ESP, the kernel with the selector initramfs,
// the selector's choice of set A by the GPT flags, the kexec into set A's
// own kernel with gantry.bootuuid= and the fw_cfg parameters, and the
// normal boot to the API, which must answer over the bridge (so
// gantry.api-bridge arrived through fw_cfg). One boot: under TCG it takes
// about half a minute more than a direct kernel boot. Skipped without an
// image, QEMU or OVMF.
func TestBootUEFI(t *testing.T) {
	bd, img := vmImage(t)
	testsupport.RequireFile(t, DefaultOVMF, "apt-get install -y ovmf (scripts/deps.sh's ensure_deps installs it)")
	tab, err := disklayout.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	setA, err := tab.Partitions().Set(disklayout.SetA)
	if err != nil {
		t.Fatal(err)
	}
	dir := vmRunDir(t, "uefi")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	n, err := Start(ctx, Options{BuildDir: bd, RunDir: dir, Firmware: FirmwareUEFI, Fresh: true,
		StopTimeout: stopTimeout, Append: []string{"systemd.show_status=1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(context.Background())
	start := time.Now()
	if err := n.WaitForAPI(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("API answered %v after start through OVMF, systemd-boot and the selector (%s)", time.Since(start).Round(time.Millisecond), n.Accel())

	con := n.Console()
	guid := setA.Boot.GUID
	for _, want := range []string{
		"BdsDxe: starting Boot",
		"selector mode (gantry.select)",
		"virtio_blk qemu_fw_cfg",
		"selector: disk /dev/vda: set A (BOOT " + guid + "; priority=1 tries_left=0 successful=true; no try taken (successful))",
		"selector: kexec /boot/vmlinuz with /boot/initrd.img, command line: ",
		"gantry.bootuuid=" + guid + " gantry.api-bridge systemd.show_status=1",
		"selector: rebooting into the loaded kernel",
		"set A (gantry.bootuuid=" + guid + ")",
		"(erofs, read-only)",
	} {
		if !strings.Contains(con, want) {
			t.Errorf("console lacks %q:\n%s", want, tail(con, 80))
		}
	}
	if strings.Count(con, "gantry-init [") < 2 || strings.Index(con, "rebooting into the loaded kernel") > strings.LastIndex(con, "switching root") {
		t.Errorf("the console does not show the selector, then the set's gantry-init switching root:\n%s", tail(con, 80))
	}
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n.StopForced() {
		t.Errorf("the guest did not power off by itself under UEFI:\n%s", tail(n.Console(), 30))
	}
}
