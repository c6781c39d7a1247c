//go:build vm

package qemu

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/testsupport"
)

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
