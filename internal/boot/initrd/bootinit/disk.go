package bootinit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
)

// MarkerPartition is the GPT name that marks the OS disk.
const MarkerPartition = "GANTRY-ROOT-A"

// Paths is where gantry-init finds the kernel's view of block devices.
type Paths struct {
	// SysBlock is sysfs's /sys/block.
	SysBlock string
	// Dev is the devtmpfs directory, /dev.
	Dev string
}

// DefaultPaths returns the real paths.
func DefaultPaths() Paths { return Paths{SysBlock: "/sys/block", Dev: "/dev"} }

// PartitionDevice is a partition as the kernel exposes it.
type PartitionDevice struct {
	// Name is the kernel's name (vda3, nvme0n1p3) and Path its node.
	Name, Path string
	// Major and Minor are the device number ("dev" in sysfs).
	Major, Minor uint32
	// Start and Size are in bytes, from sysfs.
	Start, Size int64
}

// DevNum is "major:minor", the form dm tables accept.
func (p PartitionDevice) DevNum() string { return fmt.Sprintf("%d:%d", p.Major, p.Minor) }

// Disk is the OS disk found by FindDisk.
type Disk struct {
	// Name is the kernel's name (vda) and Path its node (/dev/vda).
	Name, Path string
	// Partitions is its GPT.
	Partitions disklayout.Partitions
	parts      map[int]PartitionDevice
}

// Partition returns the kernel's device for GPT entry n.
func (d *Disk) Partition(n int) (PartitionDevice, error) {
	p, ok := d.parts[n]
	if !ok {
		return PartitionDevice{}, fmt.Errorf("%s: the kernel has no device for partition %d", d.Path, n)
	}
	return p, nil
}

// FindDisk waits until exactly one disk whose GPT has a partition named
// GANTRY-ROOT-A appears, with the kernel's partition devices matching its
// GPT, and returns it. It polls every interval until ctx ends, then returns
// the last reason it had for not finding one.
func FindDisk(ctx context.Context, p Paths, interval time.Duration) (*Disk, error) {
	for {
		disks, why, err := scanDisks(p)
		switch {
		case err != nil:
			return nil, err
		case len(disks) == 1:
			return disks[0], nil
		case len(disks) > 1:
			var names []string
			for _, d := range disks {
				names = append(names, d.Path)
			}
			return nil, fmt.Errorf("find OS disk: %d disks have a %s partition (%s); refusing to guess", len(disks), MarkerPartition, strings.Join(names, ", "))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("find OS disk: no disk with a %s partition after waiting (%s): %w", MarkerPartition, why, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// scanDisks returns the complete OS disks present now, and a summary of
// why the other block devices were passed over. Only a disk with a
// GANTRY-ROOT-A partition whose kernel partitions disagree with its GPT is
// an error.
func scanDisks(p Paths) ([]*Disk, string, error) {
	ents, err := os.ReadDir(p.SysBlock)
	if err != nil {
		return nil, "", fmt.Errorf("find OS disk: %w", err)
	}
	var found []*Disk
	var notes []string
	for _, e := range ents {
		name := e.Name()
		if disklayout.NotADisk(name) {
			continue
		}
		d, note, err := probeDisk(p, name)
		if err != nil {
			return nil, "", err
		}
		if d != nil {
			found = append(found, d)
		} else {
			notes = append(notes, name+": "+note)
		}
	}
	if len(ents) == 0 || len(notes) == 0 {
		notes = append(notes, "no block devices")
	}
	return found, strings.Join(notes, "; "), nil
}

func probeDisk(p Paths, name string) (*Disk, string, error) {
	dev := filepath.Join(p.Dev, name)
	f, err := os.Open(dev)
	if err != nil {
		return nil, "cannot open: " + err.Error(), nil
	}
	defer f.Close()
	t, err := disklayout.Read(f)
	if err != nil {
		return nil, "no GPT", nil
	}
	ps := t.Partitions()
	if _, ok := ps.ByName(MarkerPartition); !ok {
		return nil, "no " + MarkerPartition + " partition", nil
	}
	parts, err := kernelPartitions(filepath.Join(p.SysBlock, name), p.Dev)
	if err != nil {
		return nil, "", fmt.Errorf("find OS disk %s: %w", dev, err)
	}
	for _, gp := range ps {
		kp, ok := parts[gp.Number]
		if !ok {
			return nil, fmt.Sprintf("partition %d (%s) not yet known to the kernel", gp.Number, gp.Name), nil
		}
		if kp.Start != gp.Start || kp.Size != gp.Size {
			return nil, "", fmt.Errorf("find OS disk %s: the kernel's %s (start %d, size %d) differs from GPT entry %d %s (start %d, size %d)",
				dev, kp.Name, kp.Start, kp.Size, gp.Number, gp.Name, gp.Start, gp.Size)
		}
		if _, err := os.Stat(kp.Path); err != nil {
			return nil, "waiting for " + kp.Path, nil
		}
	}
	return &Disk{Name: name, Path: dev, Partitions: ps, parts: parts}, "", nil
}

// kernelPartitions reads the partitions of one disk from sysfs: the
// subdirectories that have a "partition" file.
func kernelPartitions(sysDisk, devDir string) (map[int]PartitionDevice, error) {
	ents, err := os.ReadDir(sysDisk)
	if err != nil {
		return nil, err
	}
	out := map[int]PartitionDevice{}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		if !e.IsDir() {
			continue // attributes and links such as size, device, bdi
		}
		dir := filepath.Join(sysDisk, e.Name())
		num, err := readInt(filepath.Join(dir, "partition"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		start, err := readInt(filepath.Join(dir, "start"))
		if err != nil {
			return nil, err
		}
		size, err := readInt(filepath.Join(dir, "size"))
		if err != nil {
			return nil, err
		}
		devnum, err := os.ReadFile(filepath.Join(dir, "dev"))
		if err != nil {
			return nil, err
		}
		ma, mi, ok := strings.Cut(strings.TrimSpace(string(devnum)), ":")
		major, err1 := strconv.ParseUint(ma, 10, 32)
		minor, err2 := strconv.ParseUint(mi, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s/dev: bad device number %q", dir, devnum)
		}
		out[int(num)] = PartitionDevice{
			Name: e.Name(), Path: filepath.Join(devDir, e.Name()),
			Major: uint32(major), Minor: uint32(minor),
			// sysfs counts in 512-byte sectors whatever the device's
			// sector size.
			Start: start * 512, Size: size * 512,
		}
	}
	return out, nil
}

func readInt(p string) (int64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p, err)
	}
	return n, nil
}
