//go:build linux

package bootinit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gantry-os/gantry/internal/update/gptprio"
)

// SelectorBootDir is where the selector mounts the chosen set's BOOT
// partition.
const SelectorBootDir = "/boot"

// runSelector is selector mode (gantry.select), after the modules are
// loaded: find the OS disk, choose the set and take its try, read its BOOT
// partition, and kexec its kernel. It returns only on failure.
func runSelector(ctx context.Context, con Console) error {
	wctx, cancel := context.WithTimeout(ctx, DiskTimeout)
	disk, err := FindDisk(wctx, DefaultPaths(), 20*time.Millisecond)
	cancel()
	if err != nil {
		return err
	}
	extra, err := ReadFwCfgCmdline(FwCfgByName)
	if err != nil {
		con.Printf("warning: %v", err)
	}
	if err := os.MkdirAll(SelectorBootDir, 0o755); err != nil {
		return fmt.Errorf("selector: %w", err)
	}
	var files BootFiles
	c, failed, err := gptprio.Select(ctx, disk.Path, SelectAttempts, func(c gptprio.Choice) error {
		con.Printf("selector: disk %s: %s", disk.Path, c)
		var err error
		files, err = mountBoot(disk, c)
		return err
	})
	for _, f := range failed {
		con.Printf("selector: cannot boot %v; choosing again", f)
	}
	if err != nil {
		return fmt.Errorf("selector: %s: %w", disk.Path, err)
	}
	line := NextCmdline(files.Cmdline, c.Set.Boot.GUID, extra)
	if err := kexec(con, files, line); err != nil {
		_ = unix.Unmount(SelectorBootDir, 0)
		return fmt.Errorf("selector: set %s: %w", c.Set.ID, err)
	}
	return nil
}

// mountBoot mounts the chosen set's BOOT partition read-only on
// SelectorBootDir and checks its files; on failure it is unmounted again.
func mountBoot(disk *Disk, c gptprio.Choice) (BootFiles, error) {
	dev, err := disk.Partition(c.Set.Boot.Number)
	if err != nil {
		return BootFiles{}, err
	}
	if err := unix.Mount(dev.Path, SelectorBootDir, "ext4", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, "noload"); err != nil {
		return BootFiles{}, fmt.Errorf("mount BOOT partition %s (ext4, read-only): %w", dev.Path, err)
	}
	files, err := ReadBootFiles(SelectorBootDir)
	if err != nil {
		_ = unix.Unmount(SelectorBootDir, 0)
		return BootFiles{}, fmt.Errorf("BOOT partition %s: %w", dev.Path, err)
	}
	return files, nil
}

// kexec loads the kernel and initramfs with kexec_file_load (the kernel
// checks the image; no signature is required unless the kernel enforces
// one), unmounts the BOOT partition, and reboots into the loaded kernel.
// It returns only on failure.
func kexec(con Console, files BootFiles, cmdline string) error {
	k, err := os.Open(files.Kernel)
	if err != nil {
		return fmt.Errorf("kexec: %w", err)
	}
	defer k.Close()
	i, err := os.Open(files.Initrd)
	if err != nil {
		return fmt.Errorf("kexec: %w", err)
	}
	defer i.Close()
	con.Printf("selector: kexec %s with %s, command line: %s", files.Kernel, files.Initrd, cmdline)
	if err := unix.KexecFileLoad(int(k.Fd()), int(i.Fd()), cmdline, 0); err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EKEYREJECTED) {
			return fmt.Errorf("kexec_file_load: %w (the kernel refuses unsigned images: secure boot or lockdown)", err)
		}
		return fmt.Errorf("kexec_file_load: %w", err)
	}
	k.Close()
	i.Close()
	if err := unix.Unmount(SelectorBootDir, 0); err != nil {
		con.Printf("warning: unmount %s: %v", SelectorBootDir, err)
	}
	unix.Sync()
	con.Printf("selector: rebooting into the loaded kernel")
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC); err != nil {
		return fmt.Errorf("reboot into the loaded kernel: %w", err)
	}
	return nil
}
