package signpost

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// RootPartition is the partition under the running root file system and the
// disk that holds it.
type RootPartition struct {
	// Disk is the whole disk's device node, e.g. /dev/nvme0n1.
	Disk string
	// Name is the partition's kernel name, e.g. nvme0n1p4, and Number its
	// GPT entry number.
	Name   string
	Number int
}

// FindRootPartition resolves the block device major:minor that holds the root
// file system, through the sysfs tree at sysfs (normally /sys):
// /sys/dev/block/M:m is the dm-verity device; the first entry of its slaves
// directory is the partition backing it (ROOT or HASH of the running set);
// the partition's parent in /sys/class/block is the whole disk. A root that
// is a partition itself (no device mapper) is used directly.
func FindRootPartition(sysfs string, major, minor uint32) (RootPartition, error) {
	var rp RootPartition
	devLink := filepath.Join(sysfs, "dev", "block", fmt.Sprintf("%d:%d", major, minor))
	dev, err := filepath.EvalSymlinks(devLink)
	if err != nil {
		return rp, fmt.Errorf("find root partition: device %d:%d: %w", major, minor, err)
	}
	rp.Name = filepath.Base(dev)
	slaves, err := os.ReadDir(filepath.Join(dev, "slaves"))
	if err != nil && !os.IsNotExist(err) {
		return rp, fmt.Errorf("find root partition: %w", err)
	}
	if len(slaves) > 0 {
		rp.Name = slaves[0].Name() // os.ReadDir sorts by name
	}
	part, err := filepath.EvalSymlinks(filepath.Join(sysfs, "class", "block", rp.Name))
	if err != nil {
		return rp, fmt.Errorf("find root partition: %s: %w", rp.Name, err)
	}
	num, err := os.ReadFile(filepath.Join(part, "partition"))
	if err != nil {
		if os.IsNotExist(err) {
			return rp, fmt.Errorf("find root partition: %s (under the root file system) is not a partition", rp.Name)
		}
		return rp, fmt.Errorf("find root partition: %w", err)
	}
	if rp.Number, err = strconv.Atoi(strings.TrimSpace(string(num))); err != nil {
		return rp, fmt.Errorf("find root partition: %s: partition number %q: %w", rp.Name, num, err)
	}
	rp.Disk = "/dev/" + filepath.Base(filepath.Dir(part))
	return rp, nil
}

// RootPartitionOf is FindRootPartition for the device holding path's file
// system ("/" on a node), looked up under sysfs ("/sys").
func RootPartitionOf(sysfs, path string) (RootPartition, error) {
	major, minor, err := rootDevice(path)
	if err != nil {
		return RootPartition{}, err
	}
	return FindRootPartition(sysfs, major, minor)
}

// LoadRunning loads the boot state of the disk the running system booted
// from, with the set holding the root file system as the active set.
func LoadRunning() (*State, error) {
	rp, err := RootPartitionOf("/sys", "/")
	if err != nil {
		return nil, fmt.Errorf("load boot state: %w", err)
	}
	return loadWithRoot(rp)
}

// loadWithRoot loads rp.Disk and makes the set containing rp active.
func loadWithRoot(rp RootPartition) (*State, error) {
	s, err := Load(rp.Disk, "")
	if err != nil {
		return nil, err
	}
	for _, set := range s.sets {
		if set.Contains(rp.Number) {
			s.active = set.ID
			return s, nil
		}
	}
	return nil, fmt.Errorf("load boot state of %s: the root file system is on partition %d (%s), which is in no partition set",
		rp.Disk, rp.Number, rp.Name)
}
