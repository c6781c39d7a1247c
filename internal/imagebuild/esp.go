package imagebuild

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-os/gantry/internal/boot/initrd"
	"github.com/gantry-os/gantry/internal/boot/initrd/bootinit"
)

// The UEFI chain's EFI system partition (docs/boot.md): firmware starts
// systemd-boot from the removable-media path, systemd-boot starts the one
// loader entry without a menu, and the entry boots the kernel with the
// selector initramfs (gantry-init with gantry.select), which kexecs the
// chosen set's own kernel.
const (
	// BootLoaderPackage is the Debian package that provides systemd-boot.
	// Every build requests it with the variant's packages, so it is
	// resolved, locked and fetched like them, and its EFI binary is taken
	// out of the root (nothing on the node uses it).
	BootLoaderPackage = "systemd-boot-efi"
	// bootLoaderBinary is systemd-boot's EFI binary in that package.
	bootLoaderBinary = "usr/lib/systemd/boot/efi/systemd-bootx64.efi"

	// The ESP's files.
	ESPBootLoader  = "EFI/BOOT/BOOTX64.EFI"
	ESPLoaderConf  = "loader/loader.conf"
	ESPLoaderEntry = "loader/entries/gantry.conf"
	ESPKernel      = "gantry/vmlinuz"
	ESPSelector    = "gantry/selector.img"

	// espLabel and espVolumeID make the FAT volume's identity fixed
	// ("GANT" in ASCII), for reproducible images.
	espLabel    = "GANTRY-ESP"
	espVolumeID = "47414e54"
)

// SelectorModules are the selector initramfs's modules (with their
// dependencies): the virtio disk, and fw_cfg for `gantry run`'s extra
// kernel parameters. NVMe and ext4 are built into Debian's cloud kernel;
// no device-mapper or erofs, since the selector only reads BOOT.
var SelectorModules = []string{"virtio_pci", "virtio_blk", "qemu_fw_cfg"}

// takeBootLoader copies systemd-boot's EFI binary out of the root to dst
// and removes the package's EFI binaries from the root.
func takeBootLoader(s *stage, dst string) error {
	if _, err := fs.Stat(s.root.FS(), bootLoaderBinary); err != nil {
		return fmt.Errorf("boot loader: no /%s from package %s: %w", bootLoaderBinary, BootLoaderPackage, err)
	}
	if err := copyFile(s.abs(bootLoaderBinary), dst, 0o644); err != nil {
		return fmt.Errorf("boot loader: %w", err)
	}
	if err := s.root.RemoveAll(path.Dir(path.Dir(bootLoaderBinary))); err != nil {
		return fmt.Errorf("boot loader: %w", err)
	}
	return nil
}

// selectorCmdline is the selector kernel's command line: the variant's
// console= parameters (so the selector's messages go where the OS's do),
// quiet, and gantry.select.
func selectorCmdline(params []string) string {
	var out []string
	for _, p := range params {
		if strings.HasPrefix(p, "console=") {
			out = append(out, p)
		}
	}
	return strings.Join(append(out, "quiet", bootinit.ParamSelect), " ")
}

// espOptions are the inputs of the ESP image.
type espOptions struct {
	// size is the EFI-A partition's size in bytes.
	size int64
	// bootLoader, kernel and selector are the files to install.
	bootLoader, kernel, selector string
	// cmdline is the loader entry's kernel command line.
	cmdline string
	title   string
	epoch   int64
}

// espFiles returns the ESP's files (path in the ESP → content file) and
// writes the loader configuration into dir.
func espFiles(dir string, o espOptions) (map[string]string, error) {
	conf := map[string]string{
		// No menu, no command-line editor: the one entry boots at once.
		ESPLoaderConf: "default gantry.conf\ntimeout 0\neditor no\nauto-entries no\nauto-firmware no\n",
		ESPLoaderEntry: fmt.Sprintf("title %s\nlinux /%s\ninitrd /%s\noptions %s\n",
			o.title, ESPKernel, ESPSelector, o.cmdline),
	}
	files := map[string]string{ESPBootLoader: o.bootLoader, ESPKernel: o.kernel, ESPSelector: o.selector}
	for name, content := range conf {
		p := filepath.Join(dir, strings.ReplaceAll(name, "/", "_"))
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return nil, err
		}
		files[name] = p
	}
	return files, nil
}

// makeESP writes the FAT image of the EFI system partition with
// mkfs.fat and mtools, reproducibly: a fixed volume ID and label, every
// time stamp at the epoch (mkfs.fat --invariant, mtools' SOURCE_DATE_EPOCH,
// the files' own times set to the epoch and kept with mcopy -m), and the
// directories and files created in sorted order.
func makeESP(ctx context.Context, work, out string, o espOptions) error {
	for _, t := range []struct{ name, pkg string }{{"mkfs.fat", "dosfstools"}, {"mmd", "mtools"}, {"mcopy", "mtools"}} {
		if err := needTool(t.name, t.pkg); err != nil {
			return fmt.Errorf("ESP: %w", err)
		}
	}
	dir, err := os.MkdirTemp(work, "esp-")
	if err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	defer os.RemoveAll(dir)
	files, err := espFiles(dir, o)
	if err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	var need int64
	epoch := time.Unix(o.epoch, 0)
	staged := map[string]string{}
	for i, name := range sortedKeys(files) {
		// Copies, so the times can be set without touching the inputs.
		p := filepath.Join(dir, "f"+strconv.Itoa(i))
		if err := copyFile(files[name], p, 0o644); err != nil {
			return fmt.Errorf("ESP: %w", err)
		}
		if err := os.Chtimes(p, epoch, epoch); err != nil {
			return fmt.Errorf("ESP: %w", err)
		}
		staged[name] = p
		need += fileSize(p)
	}
	if o.size%1024 != 0 || o.size <= 0 {
		return fmt.Errorf("ESP: partition size %d is not a positive whole number of KiB", o.size)
	}
	os.Remove(out)
	env := []string{"MTOOLS_SKIP_CHECK=1", "SOURCE_DATE_EPOCH=" + strconv.FormatInt(o.epoch, 10)}
	if _, err := (command{name: "mkfs.fat", args: []string{"-C", "--invariant", "-i", espVolumeID, "-n", espLabel,
		out, strconv.FormatInt(o.size/1024, 10)}, env: env}).run(ctx); err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	dirs := map[string]bool{}
	for name := range staged {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var dl []string
	for d := range dirs {
		dl = append(dl, d)
	}
	sort.Strings(dl) // parents before children
	for _, d := range dl {
		if _, err := (command{name: "mmd", args: []string{"-i", out, "::/" + d}, env: env}).run(ctx); err != nil {
			return fmt.Errorf("ESP: %w", err)
		}
	}
	for _, name := range sortedKeys(staged) {
		if _, err := (command{name: "mcopy", args: []string{"-m", "-i", out, staged[name], "::/" + name}, env: env}).run(ctx); err != nil {
			return fmt.Errorf("ESP: %s (%s of files in a %s partition; raise image.os-image-size-gib): %w",
				name, mb(need), mb(o.size), err)
		}
	}
	return nil
}

// buildESP builds the selector initramfs (gantry-init and SelectorModules
// from the kernel's modules folder) and the ESP image for EFI-A, and
// returns the image's path and its summary.
func buildESP(ctx context.Context, work string, in *inputs, k *kernelInfo, modulesDir, gantryInit, bootLoader, vmlinuz string) (string, ESPSummary, error) {
	efiA, ok := in.layout.OS.Partitions.ByRole("EFI-A")
	if !ok {
		return "", ESPSummary{}, fmt.Errorf("ESP: no EFI-A partition in the layout")
	}
	selector := filepath.Join(work, "selector.img")
	if err := initrd.Build(ctx, initrd.Options{
		Init: gantryInit, ModulesDir: modulesDir, Modules: slices.Clone(SelectorModules),
		Out: selector, Epoch: time.Unix(in.epoch, 0).UTC(), Gzip: true,
	}); err != nil {
		return "", ESPSummary{}, fmt.Errorf("ESP: selector initramfs: %w", err)
	}
	v := in.variant
	sum := ESPSummary{Cmdline: selectorCmdline(v.Kernel.Parameters), BootLoaderBytes: fileSize(bootLoader), SelectorBytes: fileSize(selector)}
	out := filepath.Join(work, "esp.img")
	if err := makeESP(ctx, work, out, espOptions{
		size: efiA.Size, bootLoader: bootLoader, kernel: vmlinuz, selector: selector, cmdline: sum.Cmdline,
		title: fmt.Sprintf("Gantry %s %s (selector, kernel %s)", v.Name, v.Version, k.Release), epoch: in.epoch,
	}); err != nil {
		return "", ESPSummary{}, err
	}
	sum.ImageBytes = fileSize(out)
	return out, sum, nil
}
