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

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/update/gptprio"
	"github.com/gantry-os/gantry/internal/update/signpost"
)

// Boot sources for Options.Boot.
const (
	// BootDisk boots like GRUB on a node: pick a set from the disk's GPT
	// flags (gptprio.next), take a try, and boot the kernel, initramfs and
	// command line of that set's BOOT partition.
	BootDisk = "disk"
	// BootFiles boots Options.Kernel, Initrd and Cmdline (from the build
	// directory unless given), whatever the disk's flags say.
	BootFiles = "files"
	// BootFirmware lets the UEFI firmware boot the disk (Options.Firmware
	// "uefi"): systemd-boot and the selector on the ESP choose the set.
	BootFirmware = "firmware"
)

// DefaultDebugfs reads the BOOT partition's ext4 (e2fsprogs).
const DefaultDebugfs = "debugfs"

// RunBootDir is the run directory's folder for the kernel, initramfs and
// command line the boot loader last loaded from a BOOT partition.
const RunBootDir = "boot"

// bootFiles are the files GRUB loads from a BOOT partition.
var bootFiles = []string{BuildKernel, BuildInitrd, BuildCmdline}

// maxLoadAttempts bounds how often the boot loader picks again after a set
// whose BOOT partition cannot be read. Each pick of a set that is not
// marked successful uses up its try, so the choice moves on by itself.
const maxLoadAttempts = 4

// Boot is one boot of a node: what the boot loader chose and loaded.
type Boot struct {
	// N counts the node's boots since Start: 1, then one more at each
	// reboot of the guest.
	N int `json:"n"`
	// Set is the partition set booted ("" when booting files).
	Set disklayout.SetID `json:"set,omitempty"`
	// BootGUID is the unique GUID of that set's BOOT partition, passed as
	// gantry.bootuuid=.
	BootGUID string `json:"boot_guid,omitempty"`
	// Before and After are the set's gptprio flags before and after the
	// boot loader took its try.
	Before signpost.Prio `json:"before"`
	After  signpost.Prio `json:"after"`
	// Kernel and Initrd are the files QEMU boots; Cmdline is the whole
	// kernel command line.
	Kernel  string `json:"kernel"`
	Initrd  string `json:"initrd"`
	Cmdline string `json:"cmdline"`
	// Firmware is the UEFI firmware file when the firmware boots the
	// disk; Cmdline is then what the selector adds to the set's line.
	Firmware string `json:"firmware,omitempty"`
}

// String describes the boot for logs and the console.
func (b Boot) String() string {
	if b.Firmware != "" {
		return fmt.Sprintf("boot %d: UEFI firmware %s (the selector on the ESP chooses the set)", b.N, b.Firmware)
	}
	if b.Set == "" {
		return fmt.Sprintf("boot %d: %s", b.N, b.Kernel)
	}
	took := "no try taken (successful)"
	if b.After.TriesLeft < b.Before.TriesLeft {
		took = "took a try"
	}
	return fmt.Sprintf("boot %d: set %s (BOOT %s; %s; %s)", b.N, b.Set, b.BootGUID, b.Before, took)
}

// loadBootFiles copies vmlinuz, initrd.img and cmdline out of the ext4 file
// system of partition boot of disk into dir, with debugfs (go-diskfs
// v1.9.4's ext4 reader returns wrong bytes for files with holes, which
// mke2fs -d makes of zero runs, e.g. in the initramfs). It returns the
// command line, trimmed.
func loadBootFiles(ctx context.Context, debugfs, disk string, boot disklayout.Partition, dir string) (string, error) {
	if strings.ContainsRune(disk, '?') {
		// debugfs takes "file?offset=N"; a '?' in the name would confuse it.
		return "", fmt.Errorf("load BOOT partition: disk path %s contains '?'", disk)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("load BOOT partition: %w", err)
	}
	var script strings.Builder
	for _, f := range bootFiles {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("load BOOT partition: %w", err)
		}
		fmt.Fprintf(&script, "dump /%s %s\n", f, f)
	}
	// Relative names in the script, so dir may hold any character.
	cmd := exec.CommandContext(ctx, debugfs, "-f", "-", disk+"?offset="+strconv.FormatInt(boot.Start, 10))
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(script.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("load BOOT partition #%d with %s: %w: %s", boot.Number, debugfs, err, bytes.TrimSpace(out))
	}
	// debugfs exits 0 when a request fails; its messages say why.
	for _, f := range bootFiles {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Size() == 0 {
			return "", fmt.Errorf("load BOOT partition #%d: no %s in its file system: %s", boot.Number, f, debugfsErrors(out))
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, BuildCmdline))
	if err != nil {
		return "", fmt.Errorf("load BOOT partition: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// debugfsErrors keeps the lines of debugfs's output that are not its
// banner or the echo of a request.
func debugfsErrors(out []byte) string {
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "debugfs ") || strings.HasPrefix(l, "debugfs:") {
			continue
		}
		keep = append(keep, l)
	}
	if len(keep) == 0 {
		return "debugfs said nothing"
	}
	return strings.Join(keep, "; ")
}

// bootFromDisk is the boot loader: it chooses a set on disk and takes a try
// as GRUB's gptprio.next does (gptprio.Select, which gantry-init's UEFI
// selector uses too), loads that set's BOOT files into dir and returns the
// boot with its kernel command line (KernelCmdline of the BOOT partition's
// line, then gantry.bootuuid=, then extra). A set whose BOOT partition
// cannot be read counts as a failed boot and the choice is made again, as a
// machine would after GRUB failed; errs reports those failures.
func bootFromDisk(ctx context.Context, debugfs, disk, dir string, noBridge bool, extra []string) (b Boot, errs []error, err error) {
	var line string
	c, errs, err := gptprio.Select(ctx, disk, maxLoadAttempts, func(c gptprio.Choice) error {
		var err error
		line, err = loadBootFiles(ctx, debugfs, disk, c.Set.Boot, dir)
		return err
	})
	if err != nil {
		return Boot{}, errs, fmt.Errorf("boot loader: %w", err)
	}
	return Boot{
		Set: c.Set.ID, BootGUID: c.Set.Boot.GUID, Before: c.Before, After: c.After,
		Kernel: filepath.Join(dir, BuildKernel), Initrd: filepath.Join(dir, BuildInitrd),
		Cmdline: KernelCmdline(line, noBridge, append([]string{"gantry.bootuuid=" + c.Set.Boot.GUID}, extra...)),
	}, errs, nil
}
