// Package bootinit is what Gantry's initramfs program (cmd/gantry-init)
// does as PID 1: mount the kernel's filesystems, load the kernel modules the
// initramfs lists, find the OS disk by its GPT, choose the partition set,
// open that set's root through dm-verity with the root hash from the kernel
// command line, mount it read-only with /etc, /run and /tmp on tmpfs, and
// switch to it. Any failure is printed to the console and powers the
// machine off: Gantry never boots a root it could not verify.
//
// The pure parts (command-line parsing, set choice, disk discovery over a
// sysfs tree, copying /etc) are portable and unit-tested; the boot itself
// is Linux-only and is tested by booting it under QEMU (see package initrd's
// integration test). docs/boot.md describes the boot chain.
package bootinit

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
)

// Kernel command-line parameters read by gantry-init.
const (
	// ParamRootHash is the dm-verity root hash of the root filesystem, in
	// hex. Required.
	ParamRootHash = "gantry.roothash"
	// ParamSet forces the partition set: A or B.
	ParamSet = "gantry.set"
	// ParamBootUUID names the set by the unique partition GUID of its BOOT
	// partition, which GRUB's gptprio.next returns (-u).
	ParamBootUUID = "gantry.bootuuid"
	// ParamInit is the program to run in the new root (default
	// /sbin/init).
	ParamInit = "gantry.init"
	// ParamVerity is what dm-verity does on a corrupted block: restart
	// (default), panic or eio.
	ParamVerity = "gantry.verity"
	// ParamAPIBridge is not gantry-init's: it turns api-bridge.service on
	// in the booted system (gantry run adds it). Known, so not warned about.
	ParamAPIBridge = "gantry.api-bridge"
)

// DefaultInit is the program gantry-init runs in the new root: systemd.
const DefaultInit = "/sbin/init"

// VerityMode is what dm-verity does when a block fails verification.
type VerityMode string

// The verity modes.
const (
	// VerityRestart reboots the machine (restart_on_corruption), as
	// Bottlerocket does: a set that fails to boot loses its GRUB try, so
	// a corrupted new set rolls back to the old one.
	VerityRestart VerityMode = "restart"
	// VerityPanic panics the kernel (panic_on_corruption); with panic=N
	// it reboots after N seconds, with panic=0 it stops.
	VerityPanic VerityMode = "panic"
	// VerityEIO fails the read with EIO and logs it, and the system keeps
	// running: for debugging only.
	VerityEIO VerityMode = "eio"
)

// TableOption is the dm-verity optional argument for the mode ("" for
// VerityEIO).
func (m VerityMode) TableOption() string {
	switch m {
	case VerityPanic:
		return "panic_on_corruption"
	case VerityEIO:
		return ""
	}
	return "restart_on_corruption"
}

// ErrNoRootHash is returned by ParseCmdline when the command line has no
// root hash: gantry-init refuses to boot an unverified root.
var ErrNoRootHash = errors.New("no " + ParamRootHash + "= on the kernel command line: refusing to boot a root filesystem that cannot be verified")

// Cmdline is the kernel command line as gantry-init sees it.
type Cmdline struct {
	// RootHash is the root hash, lower-case hex.
	RootHash string
	// Set is the forced partition set, or "".
	Set disklayout.SetID
	// BootUUID is the BOOT partition GUID naming the set, upper case, or
	// "".
	BootUUID string
	// Init is the program to exec in the new root.
	Init string
	// Verity is the corruption mode.
	Verity VerityMode
	// Warnings are unknown gantry.* parameters and the like.
	Warnings []string
}

// SplitCmdline splits a kernel command line into parameters the way the
// kernel does: on white space outside double quotes, with the quotes
// removed. Parameters after a lone "--" belong to init and are not returned.
func SplitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	flush := func() {
		if have {
			out = append(out, cur.String())
		}
		cur.Reset()
		have = false
	}
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			flush()
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	flush()
	for i, p := range out {
		if p == "--" {
			return out[:i]
		}
	}
	return out
}

// ParseCmdline parses the gantry.* parameters of a kernel command line
// (/proc/cmdline). The last occurrence of a parameter wins, as for the
// kernel's own. It fails with ErrNoRootHash when the root hash is missing
// and with a descriptive error when any gantry.* value is invalid.
func ParseCmdline(s string) (Cmdline, error) {
	c := Cmdline{Init: DefaultInit, Verity: VerityRestart}
	haveHash := false
	var errs []error
	for _, p := range SplitCmdline(s) {
		k, v, _ := strings.Cut(p, "=")
		if !strings.HasPrefix(k, "gantry.") {
			continue
		}
		switch k {
		case ParamRootHash:
			haveHash = true
			c.RootHash = strings.ToLower(v)
		case ParamSet:
			c.Set = ""
			if v != "" {
				id, err := disklayout.ParseSetID(v)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s=%s: %w", ParamSet, v, err))
					continue
				}
				c.Set = id
			}
		case ParamBootUUID:
			c.BootUUID = strings.ToUpper(v)
		case ParamInit:
			if !path.IsAbs(v) || path.Clean(v) != v {
				errs = append(errs, fmt.Errorf("%s=%q: want a clean absolute path", ParamInit, v))
				continue
			}
			c.Init = v
		case ParamVerity:
			switch m := VerityMode(v); m {
			case VerityRestart, VerityPanic, VerityEIO:
				c.Verity = m
			default:
				errs = append(errs, fmt.Errorf("%s=%q: want restart, panic or eio", ParamVerity, v))
			}
		case ParamSelect:
			// Selector mode is decided before parsing (IsSelector).
		case ParamAPIBridge:
			// For the booted system (api-bridge.service's condition).
		default:
			c.Warnings = append(c.Warnings, fmt.Sprintf("unknown kernel parameter %q ignored", k))
		}
	}
	if !haveHash || c.RootHash == "" {
		errs = append(errs, ErrNoRootHash)
	} else if !isSHA256Hex(c.RootHash) {
		errs = append(errs, fmt.Errorf("%s=%q: want 64 hex digits (a SHA-256 root hash)", ParamRootHash, c.RootHash))
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	return c, nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}
