package qemu

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ExtraDisk is a blank disk beside the OS disk, as a cloud's instance
// store or a machine's second drive: a sparse raw file in the run directory
// (disk-SERIAL.img), kept across runs unless Fresh, on virtio-blk with a
// serial number, so that the node finds it without device-name guesses
// (/sys/class/block/vdX/serial).
type ExtraDisk struct {
	Serial string
	Size   int64 // bytes
}

var diskSerial = regexp.MustCompile(`^[A-Za-z0-9._-]{1,20}$`)

// ParseExtraDisk reads SERIAL:SIZE, such as scratch:1G (sizes in K, M, G or
// T, powers of 1024).
func ParseExtraDisk(s string) (ExtraDisk, error) {
	serial, size, ok := strings.Cut(s, ":")
	if !ok || !diskSerial.MatchString(serial) {
		return ExtraDisk{}, fmt.Errorf("disk %q: want SERIAL:SIZE, such as scratch:1G (a serial of up to 20 letters, digits, '.', '_', '-')", s)
	}
	n, err := ParseSize(size)
	if err != nil || n <= 0 {
		return ExtraDisk{}, fmt.Errorf("disk %q: size %q: want a positive number of bytes, or of K, M, G or T", s, size)
	}
	return ExtraDisk{Serial: serial, Size: n}, nil
}

// path is the disk's file in the run directory.
func (d ExtraDisk) path(runDir string) string {
	return filepath.Join(runDir, "disk-"+d.Serial+".img")
}

// prepareExtraDisks makes each extra disk's file: kept from an earlier run
// unless fresh (then blank again), grown when the size grew.
func prepareExtraDisks(o Options) error {
	seen := map[string]bool{}
	for _, d := range o.Disks {
		if !diskSerial.MatchString(d.Serial) || d.Size <= 0 {
			return fmt.Errorf("extra disk %q: a serial of up to 20 letters, digits, '.', '_', '-' and a positive size", d.Serial)
		}
		if seen[d.Serial] {
			return fmt.Errorf("extra disk %q: twice", d.Serial)
		}
		seen[d.Serial] = true
		p := d.path(o.RunDir)
		if o.Fresh {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("extra disk: %w", err)
			}
		}
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("extra disk: %w", err)
		}
		st, err := f.Stat()
		if err == nil && st.Size() < d.Size {
			err = f.Truncate(d.Size)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("extra disk %s: %w", p, err)
		}
	}
	return nil
}

// extraDiskArgs are QEMU's arguments for the extra disks.
func extraDiskArgs(o Options) []string {
	var a []string
	for i, d := range o.Disks {
		id := fmt.Sprintf("xdisk%d", i)
		a = append(a, "-drive", fmt.Sprintf("if=none,id=%s,file=%s,format=raw,cache=writeback,discard=unmap", id, escape(d.path(o.RunDir))),
			"-device", fmt.Sprintf("virtio-blk-pci,drive=%s,serial=%s", id, d.Serial))
	}
	return a
}
