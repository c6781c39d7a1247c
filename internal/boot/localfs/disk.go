package localfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/update/gptprio"
	"github.com/gantry-os/gantry/internal/update/signpost"
)

// Options say where the partitions are.
type Options struct {
	// Disk is the OS disk: an image file or a block device. Empty means the
	// disk holding the running root filesystem, found through Sys.
	Disk string
	// DataDisk is the disk holding GANTRY-DATA when the OS disk does not
	// (split plan). Empty means: search the other disks, on a node only.
	DataDisk string
	// Sys, Dev and Root are /sys, /dev and / (defaults).
	Sys, Dev, Root string
	// Mkfs is the mkfs.ext4 program (default DefaultMkfs).
	Mkfs string
	// LinkDir, if set, receives a symlink per prepared partition device,
	// LinkDir/<GPT name> -> /dev/<partition>, made once its filesystem is
	// complete. The mount units name these links: a path outside /dev, so
	// systemd (which has no udev here to announce .device units) waits for
	// no device, and a partition is mountable only once it is prepared.
	LinkDir string
	// Mount makes NodeMounts(LinkDir) once both partitions are ready (on a
	// node); a mount it cannot make is left to its mount unit.
	Mount bool
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
	// mounter makes the mounts (tests replace it).
	mounter mounter
}

func (o Options) withDefaults() Options {
	if o.Sys == "" {
		o.Sys = "/sys"
	}
	if o.Dev == "" {
		o.Dev = "/dev"
	}
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Mkfs == "" {
		o.Mkfs = DefaultMkfs
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.mounter == nil {
		o.mounter = sysMounter{}
	}
	return o
}

// Prepare finds GANTRY-PRIVATE and GANTRY-DATA and makes sure each holds a
// complete ext4 filesystem, formatting (and, for DATA, first growing) the
// ones that do not. A partition with a complete filesystem is never
// formatted. It stops at the first error.
func Prepare(ctx context.Context, o Options) ([]Result, error) {
	o = o.withDefaults()
	parts, err := locate(o)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, p := range parts {
		r, err := prepare(ctx, p, o.Mkfs, o.Logger)
		if err != nil {
			return out, err
		}
		if o.LinkDir != "" {
			if err := linkPartition(o.LinkDir, r.Name, r.Device); err != nil {
				return out, err
			}
		}
		o.Logger.Info("partition ready", "partition", r.Name, "device", r.Device, "action", string(r.Action),
			"found", r.Before.String(), "size", r.Size, "grown_from", r.GrownFrom)
		out = append(out, r)
	}
	if o.Mount && o.LinkDir != "" {
		made, err := mountAll(ctx, o.mounter, NodeMounts(o.LinkDir))
		if err != nil {
			o.Logger.Warn("left to the mount units", "error", err.Error())
		}
		o.Logger.Info("mounted", "targets", strings.Join(made, " "))
	}
	return out, nil
}

// DefaultLinkDir is where prepare-local-fs links the prepared partitions on
// a node (local.mount and var-lib-gantry.mount mount from there).
const DefaultLinkDir = "/run/gantry/partitions"

// linkPartition points dir/name at device, replacing an older link
// atomically.
func linkPartition(dir, name, device string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	link := filepath.Join(dir, name)
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(device, tmp); err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s: %w", name, err)
	}
	return nil
}

// locate finds the partitions of Specs: on the OS disk, and DATA on the data
// disk when the OS disk has none.
func locate(o Options) ([]*partition, error) {
	osDisk := o.Disk
	if osDisk == "" {
		var err error
		if osDisk, err = bootDisk(o); err != nil {
			return nil, err
		}
	}
	t, err := disklayout.ReadFile(osDisk)
	if err != nil {
		return nil, err
	}
	var out []*partition
	for _, spec := range Specs() {
		disk, entry, err := find(t.Partitions(), spec, osDisk)
		if _, named := t.Partitions().ByName(spec.Name); !named && spec.Kind == disklayout.KindData {
			disk, entry, err = dataDisk(o, osDisk)
		}
		if err != nil {
			return nil, err
		}
		p, err := newPartition(o, disk, entry, spec)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// find returns the one entry named spec.Name, which must be of spec.Kind.
func find(ps disklayout.Partitions, spec Spec, disk string) (string, disklayout.Partition, error) {
	var found []disklayout.Partition
	for _, p := range ps {
		if p.Name == spec.Name {
			found = append(found, p)
		}
	}
	switch {
	case len(found) == 0:
		return "", disklayout.Partition{}, fmt.Errorf("%s: no partition named %s", disk, spec.Name)
	case len(found) > 1:
		return "", disklayout.Partition{}, fmt.Errorf("%s: %d partitions are named %s; refusing to guess", disk, len(found), spec.Name)
	case found[0].Kind != spec.Kind:
		return "", disklayout.Partition{}, fmt.Errorf("%s: partition %d is named %s but its type %s is not a %s partition",
			disk, found[0].Number, spec.Name, found[0].Type, spec.Kind)
	}
	return disk, found[0], nil
}

// bootDisk returns the device node of the disk holding the running root
// filesystem, as signpost finds it: the dm-verity device's backing
// partition, then that partition's disk.
func bootDisk(o Options) (string, error) {
	rp, err := signpost.RootPartitionOf(o.Sys, o.Root)
	if err != nil {
		return "", fmt.Errorf("find the boot disk: %w", err)
	}
	return filepath.Join(o.Dev, filepath.Base(rp.Disk)), nil
}

// dataDisk finds GANTRY-DATA on a disk other than the OS disk (the split
// plan's data disk): o.DataDisk, or on a node the one other disk that has
// it. Off a node (an explicit Disk) nothing is searched.
func dataDisk(o Options, osDisk string) (string, disklayout.Partition, error) {
	spec := Specs()[1]
	if o.DataDisk != "" {
		t, err := disklayout.ReadFile(o.DataDisk)
		if err != nil {
			return "", disklayout.Partition{}, err
		}
		return find(t.Partitions(), spec, o.DataDisk)
	}
	if o.Disk != "" {
		return "", disklayout.Partition{}, fmt.Errorf("%s has no partition named %s; name the data disk (--data-disk)", osDisk, spec.Name)
	}
	ents, err := os.ReadDir(filepath.Join(o.Sys, "block"))
	if err != nil {
		return "", disklayout.Partition{}, fmt.Errorf("find the data disk: %w", err)
	}
	var disks []string
	var entry disklayout.Partition
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(o.Dev, name)
		if disklayout.NotADisk(name) || path == osDisk {
			continue
		}
		t, err := disklayout.ReadFile(path)
		if err != nil {
			continue // no GPT, or not readable: not a Gantry data disk
		}
		if _, p, err := find(t.Partitions(), spec, path); err == nil {
			disks, entry = append(disks, path), p
		}
	}
	switch len(disks) {
	case 0:
		return "", disklayout.Partition{}, fmt.Errorf("no partition named %s on the boot disk %s or any other disk", spec.Name, osDisk)
	case 1:
		return disks[0], entry, nil
	}
	return "", disklayout.Partition{}, fmt.Errorf("%d disks have a partition named %s (%s); refusing to guess",
		len(disks), spec.Name, strings.Join(disks, ", "))
}

// newPartition returns how to reach entry of disk: the kernel's partition
// device for a block device (checked against the GPT), else a region of the
// image file.
func newPartition(o Options, disk string, entry disklayout.Partition, spec Spec) (*partition, error) {
	fi, err := os.Stat(disk)
	if err != nil {
		return nil, err
	}
	p := &partition{spec: spec, disk: disk, entry: entry}
	if fi.Mode()&os.ModeDevice == 0 {
		if entry.End() > fi.Size() {
			return nil, fmt.Errorf("%s: partition %d (%s) ends past the end of the file", disk, entry.Number, spec.Name)
		}
		p.path, p.offset, p.size = disk, entry.Start, entry.Size
		return p, nil
	}
	p.isDevice, p.sys, p.dev = true, o.Sys, o.Dev
	if err := p.findDevice(); err != nil {
		return nil, err
	}
	return p, nil
}

// findDevice sets path and size from the kernel's partition device for
// p.entry, and checks that the kernel's start and size are the GPT's.
func (p *partition) findDevice() error {
	sysDisk := filepath.Join(p.sys, "class", "block", filepath.Base(p.disk))
	ents, err := os.ReadDir(sysDisk)
	if err != nil {
		return fmt.Errorf("%s: partitions: %w", p.disk, err)
	}
	for _, e := range ents {
		dir := filepath.Join(sysDisk, e.Name())
		if n, err := readSysInt(dir, "partition"); err != nil || n != int64(p.entry.Number) {
			continue
		}
		start, err1 := readSysInt(dir, "start")
		size, err2 := readSysInt(dir, "size")
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("%s: %w", p.disk, err)
		}
		// sysfs counts 512-byte sectors whatever the sector size.
		if start*512 != p.entry.Start || size*512 != p.entry.Size {
			return fmt.Errorf("%s: the kernel's %s (start %d, size %d) differs from GPT entry %d %s (start %d, size %d)",
				p.disk, e.Name(), start*512, size*512, p.entry.Number, p.spec.Name, p.entry.Start, p.entry.Size)
		}
		p.path, p.offset, p.size = filepath.Join(p.dev, e.Name()), 0, size*512
		return nil
	}
	return fmt.Errorf("%s: the kernel has no device for partition %d (%s)", p.disk, p.entry.Number, p.spec.Name)
}

func readSysInt(dir, name string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s/%s: %w", dir, name, err)
	}
	return n, nil
}

// grow extends p to the end of its disk when it is the disk's last
// partition, keeping the last MiB for the backup GPT, and rewrites the GPT
// (backup at the disk's real end, then primary). On a block device it then
// tells the kernel the new size (BLKPG_RESIZE_PARTITION) and checks that the
// kernel took it. It returns the old size, or 0 when there was nothing to
// grow. The disk is locked (flock) while its table is read and written, as
// signpost and partitioning tools do.
//
// A crash while the table is written leaves the old or the new table (see
// disklayout.Table.WriteBack); the filesystem is made only afterwards, so
// the next boot either grows again or finds the partition already grown.
func grow(ctx context.Context, p *partition, log *slog.Logger) (int64, error) {
	f, err := os.OpenFile(p.disk, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := gptprio.LockExclusive(f); err != nil {
		return 0, fmt.Errorf("lock %s: %w", p.disk, err)
	}
	t, err := disklayout.Read(f)
	if err != nil {
		return 0, err
	}
	ps := t.Partitions()
	idx := -1
	for i, q := range ps {
		if q.Number == p.entry.Number {
			idx = i
		}
		if q.End() > p.entry.End() {
			return 0, nil // not the last partition
		}
	}
	if idx < 0 || ps[idx].Start != p.entry.Start || ps[idx].GUID != p.entry.GUID {
		return 0, fmt.Errorf("%s: partition %d changed since it was read", p.disk, p.entry.Number)
	}
	end := (t.Size - disklayout.MiB) / disklayout.MiB * disklayout.MiB
	old := ps[idx].Size
	if end <= ps[idx].End() {
		return 0, nil
	}
	ps[idx].Size = end - ps[idx].Start
	d := disklayout.Disk{Size: t.Size / disklayout.MiB * disklayout.MiB, GUID: t.GUID, Partitions: ps}
	if err := disklayout.Write(f, d); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync %s: %w", p.disk, err)
	}
	log.Info("grew the partition to the end of the disk", "partition", p.spec.Name, "disk", p.disk,
		"from_mib", old/disklayout.MiB, "to_mib", ps[idx].Size/disklayout.MiB)
	p.entry = ps[idx]
	if !p.isDevice {
		p.size = p.entry.Size
		return old, nil
	}
	if err := resizePartition(f, p.entry); err != nil {
		return 0, fmt.Errorf("tell the kernel the new size of %s: %w", p.path, err)
	}
	if err := p.findDevice(); err != nil {
		return 0, err
	}
	return old, nil
}
