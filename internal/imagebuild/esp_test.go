package imagebuild

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
)

// mread reads a file out of a FAT image (image, or image@@offset) with
// mtools.
func mread(t *testing.T, image, name string) []byte {
	t.Helper()
	cmd := exec.Command("mcopy", "-n", "-i", image, "::/"+name, "-")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mcopy ::/%s from %s: %v", name, image, err)
	}
	return out
}

func TestMakeESP(t *testing.T) {
	needTools(t, "mkfs.fat", "mmd", "mcopy")
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name string, size int) string {
		p := filepath.Join(dir, name)
		data := bytes.Repeat([]byte(name), size/len(name)+1)[:size]
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	o := espOptions{
		size: 12 << 20, bootLoader: write("sd-boot", 140_000), kernel: write("vmlinuz", 3<<20), selector: write("selector", 1<<20),
		cmdline: selectorCmdline([]string{"console=tty0", "quiet", "console=ttyS0,115200n8", "gantry.init=/x"}),
		title:   "Gantry test", epoch: 1700000000,
	}
	if o.cmdline != "console=tty0 console=ttyS0,115200n8 quiet gantry.select" {
		t.Errorf("selector command line %q", o.cmdline)
	}
	img1, img2 := filepath.Join(t.TempDir(), "esp1.img"), filepath.Join(t.TempDir(), "esp2.img")
	for _, img := range []string{img1, img2} {
		if err := makeESP(ctx, t.TempDir(), img, o); err != nil {
			t.Fatal(err)
		}
		// The inputs' own times must not matter.
		later := time.Unix(1800000000, 0)
		if err := os.Chtimes(o.kernel, later, later); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := os.ReadFile(img1)
	b, _ := os.ReadFile(img2)
	if int64(len(a)) != o.size || !bytes.Equal(a, b) {
		t.Errorf("two ESPs of the same inputs differ (sizes %d, %d)", len(a), len(b))
	}
	for name, src := range map[string]string{ESPBootLoader: o.bootLoader, ESPKernel: o.kernel, ESPSelector: o.selector} {
		want, _ := os.ReadFile(src)
		if got := mread(t, img1, name); !bytes.Equal(got, want) {
			t.Errorf("ESP %s: %d bytes, want the %d of %s", name, len(got), len(want), src)
		}
	}
	if got := string(mread(t, img1, ESPLoaderConf)); !strings.Contains(got, "default gantry.conf\ntimeout 0\neditor no\n") {
		t.Errorf("loader.conf:\n%s", got)
	}
	want := "title Gantry test\nlinux /gantry/vmlinuz\ninitrd /gantry/selector.img\noptions " + o.cmdline + "\n"
	if got := string(mread(t, img1, ESPLoaderEntry)); got != want {
		t.Errorf("loader entry:\n%s\nwant:\n%s", got, want)
	}
	info := exec.Command("minfo", "-i", img1, "::")
	info.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := info.Output(); err != nil || !strings.Contains(string(out), "serial number: 47414E54") ||
		!strings.Contains(string(out), `disk label="GANTRY-ESP `) {
		t.Errorf("minfo: %v\n%s", err, out)
	}

	// Files that do not fit fail the build and say what to change.
	small := o
	small.size = 2 << 20
	err := makeESP(ctx, t.TempDir(), filepath.Join(t.TempDir(), "small.img"), small)
	if err == nil || !strings.Contains(err.Error(), "raise image.os-image-size-gib") {
		t.Errorf("ESP too small: %v", err)
	}
}

// checkESP checks the EFI-A partition of a built disk image: it holds the
// ESP image of the build (esp.img) with systemd-boot at the removable-media
// path, the loader entry that boots the build's kernel with the selector
// initramfs and gantry.select, the kernel itself, and a selector initramfs
// with gantry-init and the selector's modules only.
func checkESP(t *testing.T, out, diskImage string) {
	t.Helper()
	needTools(t, "mcopy")
	tab, err := disklayout.ReadFile(diskImage)
	if err != nil {
		t.Fatal(err)
	}
	efi, ok := tab.Partitions().ByRole("EFI-A")
	if !ok || efi.Type != disklayout.TypeEFISystem {
		t.Fatalf("no EFI-A of the EFI system type: %+v", efi)
	}
	part := diskImage + "@@" + strconv.FormatInt(efi.Start, 10)
	esp, err := os.ReadFile(filepath.Join(out, "esp.img"))
	if err != nil {
		t.Fatal(err)
	}
	sec, err := disklayout.OpenPartition(diskImage, efi.Number, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(esp))
	_, err = sec.ReadAt(got, 0)
	sec.Close()
	if err != nil || !bytes.Equal(got, esp) {
		t.Errorf("EFI-A does not hold esp.img: %v", err)
	}
	if sd := mread(t, part, ESPBootLoader); !bytes.HasPrefix(sd, []byte("MZ")) {
		t.Errorf("%s is not an EFI (PE) binary: %q", ESPBootLoader, sd[:min(len(sd), 16)])
	}
	entry := string(mread(t, part, ESPLoaderEntry))
	for _, want := range []string{"linux /" + ESPKernel + "\n", "initrd /" + ESPSelector + "\n", " gantry.select\n"} {
		if !strings.Contains(entry, want) {
			t.Errorf("loader entry lacks %q:\n%s", want, entry)
		}
	}
	vmlinuz, _ := os.ReadFile(filepath.Join(out, "vmlinuz"))
	if k := mread(t, part, ESPKernel); len(vmlinuz) == 0 || !bytes.Equal(k, vmlinuz) {
		t.Errorf("the ESP's kernel (%d bytes) is not the build's vmlinuz (%d bytes)", len(k), len(vmlinuz))
	}
	zr, err := gzip.NewReader(bytes.NewReader(mread(t, part, ESPSelector)))
	if err != nil {
		t.Fatalf("selector initramfs: %v", err)
	}
	cpio, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("selector initramfs: %v", err)
	}
	for _, want := range []string{"00000000init\x00", "virtio_blk.ko", "qemu_fw_cfg.ko", "etc/gantry-initrd/modules"} {
		if !bytes.Contains(cpio, []byte(want)) {
			t.Errorf("selector initramfs lacks %q", strings.Trim(want, "0\x00"))
		}
	}
	for _, bad := range []string{"dm_verity.ko", "dm-verity.ko", "erofs.ko", "virtio_net.ko"} {
		if bytes.Contains(cpio, []byte(bad)) {
			t.Errorf("selector initramfs has %s: it only needs to read BOOT", bad)
		}
	}
}
