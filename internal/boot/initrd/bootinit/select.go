package bootinit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The selector: in the UEFI chain, firmware starts systemd-boot, which
// starts the kernel on the ESP with the selector initramfs and
// gantry.select on the command line. gantry-init then does what GRUB's
// gptprio does on Bottlerocket, in Linux: it chooses the set and takes a
// try (package gptprio), mounts that set's BOOT partition read-only, and
// kexecs the set's own kernel, initramfs and command line, with
// gantry.bootuuid= naming the set. docs/boot.md describes the chain.
const (
	// ParamSelect puts gantry-init in selector mode. It is the only
	// gantry.* parameter the selector reads; no root hash is needed.
	ParamSelect = "gantry.select"
	// FwCfgCmdline is the QEMU fw_cfg entry whose content the selector
	// appends to the chosen set's command line: `gantry run --firmware
	// uefi` passes gantry.api-bridge and --append there, since it cannot
	// change the command line on the disk.
	FwCfgCmdline = "opt/gantry/cmdline"
	// FwCfgByName is where the qemu_fw_cfg module shows fw_cfg entries.
	FwCfgByName = "/sys/firmware/qemu_fw_cfg/by_name"
	// SelectAttempts bounds how often the selector chooses again after a
	// set whose BOOT partition could not be read (gptprio.Select).
	SelectAttempts = 4
)

// The files of a BOOT partition's file system.
const (
	BootKernel  = "vmlinuz"
	BootInitrd  = "initrd.img"
	BootCmdline = "cmdline"
)

// IsSelector reports whether a kernel command line asks for selector mode:
// gantry.select alone or with a true value (1, y, yes, true).
func IsSelector(cmdline string) bool {
	on := false
	for _, p := range SplitCmdline(cmdline) {
		k, v, hasValue := strings.Cut(p, "=")
		if k != ParamSelect {
			continue
		}
		switch strings.ToLower(v) {
		case "1", "y", "yes", "true":
			on = true
		default:
			on = !hasValue
		}
	}
	return on
}

// BootFiles are a set's boot files, as the selector found them on its
// mounted BOOT partition.
type BootFiles struct {
	// Kernel and Initrd are the paths of vmlinuz and initrd.img.
	Kernel, Initrd string
	// Cmdline is the content of the cmdline file, trimmed.
	Cmdline string
}

// ReadBootFiles checks the boot files in dir, a mounted BOOT partition:
// vmlinuz and initrd.img must be non-empty regular files, and cmdline a
// kernel command line that gantry-init of the kexeced kernel will accept
// (ParseCmdline, so a valid gantry.roothash). A set that fails here is not
// booted.
func ReadBootFiles(dir string) (BootFiles, error) {
	b := BootFiles{Kernel: filepath.Join(dir, BootKernel), Initrd: filepath.Join(dir, BootInitrd)}
	for _, p := range []string{b.Kernel, b.Initrd} {
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			return b, fmt.Errorf("boot files: %w", err)
		case !fi.Mode().IsRegular():
			return b, fmt.Errorf("boot files: %s is not a regular file", p)
		case fi.Size() == 0:
			return b, fmt.Errorf("boot files: %s is empty", p)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, BootCmdline))
	if err != nil {
		return b, fmt.Errorf("boot files: %w", err)
	}
	b.Cmdline = strings.TrimSpace(string(raw))
	if b.Cmdline == "" {
		return b, fmt.Errorf("boot files: %s is empty", filepath.Join(dir, BootCmdline))
	}
	if _, err := ParseCmdline(b.Cmdline); err != nil {
		return b, fmt.Errorf("boot files: %s: %w", filepath.Join(dir, BootCmdline), err)
	}
	return b, nil
}

// NextCmdline is the command line the selector gives the chosen set's
// kernel: the BOOT partition's line, then gantry.bootuuid=<GUID of that
// BOOT partition> (so the second gantry-init opens the set that was chosen
// and tried, whatever its flags say now), then extra. The additions go
// before a lone "--", whose arguments are init's.
func NextCmdline(line, bootGUID string, extra []string) string {
	return InsertParams(line, append([]string{ParamBootUUID + "=" + strings.ToUpper(bootGUID)}, extra...))
}

// InsertParams adds params to a kernel command line before a lone "--"
// (whose arguments are init's), or at its end. The line is kept verbatim,
// quoted values included.
func InsertParams(line string, params []string) string {
	head, tail := strings.TrimSpace(line), ""
	switch {
	case head == "--" || strings.HasPrefix(head, "-- "):
		head, tail = "", head
	case strings.Contains(head, " -- "):
		i := strings.Index(head, " -- ")
		head, tail = head[:i], head[i+1:]
	case strings.HasSuffix(head, " --"):
		head, tail = strings.TrimSuffix(head, " --"), "--"
	}
	var parts []string
	for _, p := range append(append([]string{head}, params...), tail) {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " ")
}

// ReadFwCfgCmdline returns the kernel parameters in fw_cfg entry
// FwCfgCmdline under byName (normally FwCfgByName), as one line for
// NextCmdline's extra (quotes are kept for the next kernel to parse). A
// machine without fw_cfg, or without the entry, has none.
func ReadFwCfgCmdline(byName string) ([]string, error) {
	raw, err := os.ReadFile(filepath.Join(byName, FwCfgCmdline, "raw"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fw_cfg %s: %w", FwCfgCmdline, err)
	}
	s := strings.TrimSpace(strings.TrimRight(string(raw), "\x00"))
	if strings.ContainsAny(s, "\x00\n\r") {
		return nil, fmt.Errorf("fw_cfg %s: want one line of kernel parameters", FwCfgCmdline)
	}
	if s == "" {
		return nil, nil
	}
	return []string{s}, nil
}
