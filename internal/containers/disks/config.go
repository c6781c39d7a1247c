// Package disks is the program of the disks bootstrap container
// (gantry-disks): from its user data it finds the node's ephemeral disks,
// formats the blank ones and mounts them under /local/mnt (the host's /mnt),
// where the host and every container that binds /mnt see them. It runs in a
// bootstrap container, which sees the host's root at /.bottlerocket/rootfs
// with /mnt shared back to the host, every device, and CAP_SYS_ADMIN.
//
// It never destroys data it was not told to: a disk that already holds the
// requested filesystem is mounted as it is, a disk with anything else on it
// (another filesystem, a partition table) is refused unless its entry says
// "wipe", and a disk that is mounted or held by another device is refused
// always. It is therefore safe in mode "always", which prepares the disks at
// every boot.
package disks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Config is the container's user data (JSON).
type Config struct {
	Disks []Disk `json:"disks"`
}

// Disk is one disk to prepare. Exactly one of Device and Serial names it.
type Disk struct {
	// Device is the disk's device path, such as /dev/vdb or /dev/nvme1n1.
	Device string `json:"device,omitempty"`
	// Serial is the disk's serial number as the kernel reports it
	// (/sys/class/block/<disk>/serial or .../device/serial): stable where
	// device names are not, and with no udev on the node there are no
	// /dev/disk/by-id links.
	Serial string `json:"serial,omitempty"`
	// Filesystem is ext4 (the default) or xfs.
	Filesystem string `json:"filesystem,omitempty"`
	// Label is the filesystem's label when it is made.
	Label string `json:"label,omitempty"`
	// Mount is the directory under /local/mnt (the host's /mnt) to mount it
	// on: one path element.
	Mount string `json:"mount"`
	// MountOptions are mount(8)-style options (noatime, discard, ...).
	MountOptions []string `json:"mount-options,omitempty"`
	// Wipe allows formatting a disk that holds something else: another
	// filesystem or a partition table. A disk that already holds the
	// requested filesystem is never formatted.
	Wipe bool `json:"wipe,omitempty"`
	// Optional makes a missing disk a note, not an error.
	Optional bool `json:"optional,omitempty"`
}

// Filesystems are the supported filesystems, each with its label's
// longest length.
var filesystems = map[string]int{"ext4": 16, "xfs": 12}

var (
	mountName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	labelText = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	option    = regexp.MustCompile(`^[a-z0-9_]+(=[A-Za-z0-9._:/-]+)?$`)
)

// ParseConfig reads and checks the user data. Errors name the field, as
// disks[1].mount, and the reason; unknown fields are errors too, so that a
// misspelt key is not silently ignored.
func ParseConfig(b []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("user data: %w", err)
	}
	if dec.More() {
		return nil, errors.New("user data: more than one JSON value")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks every entry and fills in the default filesystem.
func (c *Config) Validate() error {
	if len(c.Disks) == 0 {
		return errors.New("user data: disks: no disk to prepare")
	}
	var errs []error
	mounts, devices, serials := map[string]int{}, map[string]int{}, map[string]int{}
	for i := range c.Disks {
		d := &c.Disks[i]
		field := func(name, format string, a ...any) {
			errs = append(errs, fmt.Errorf("user data: disks[%d].%s: %s", i, name, fmt.Sprintf(format, a...)))
		}
		switch {
		case d.Device == "" && d.Serial == "":
			field("device", "give the disk's device or its serial")
		case d.Device != "" && d.Serial != "":
			field("serial", "give either the device or the serial, not both")
		case d.Device != "":
			if !strings.HasPrefix(d.Device, "/dev/") || path.Clean(d.Device) != d.Device || strings.Contains(d.Device, "..") {
				field("device", "%q is not a device path under /dev", d.Device)
			} else if j, dup := devices[d.Device]; dup {
				field("device", "%s is also disks[%d]", d.Device, j)
			}
			devices[d.Device] = i
		default:
			if j, dup := serials[d.Serial]; dup {
				field("serial", "%q is also disks[%d]", d.Serial, j)
			}
			serials[d.Serial] = i
		}
		if d.Filesystem == "" {
			d.Filesystem = "ext4"
		}
		maxLabel, ok := filesystems[d.Filesystem]
		if !ok {
			field("filesystem", "%q is not supported (ext4 or xfs)", d.Filesystem)
		}
		if d.Label != "" {
			if !labelText.MatchString(d.Label) {
				field("label", "%q: only letters, digits, '.', '_' and '-'", d.Label)
			} else if ok && len(d.Label) > maxLabel {
				field("label", "%q is longer than %s allows (%d characters)", d.Label, d.Filesystem, maxLabel)
			}
		}
		switch {
		case d.Mount == "":
			field("mount", "missing: the directory under /local/mnt to mount the disk on")
		case !mountName.MatchString(d.Mount) || d.Mount == "." || d.Mount == "..":
			field("mount", "%q is not one directory name (letters, digits, '.', '_', '-')", d.Mount)
		default:
			if j, dup := mounts[d.Mount]; dup {
				field("mount", "%q is also disks[%d]'s", d.Mount, j)
			}
			mounts[d.Mount] = i
		}
		for k, o := range d.MountOptions {
			if !option.MatchString(o) {
				field(fmt.Sprintf("mount-options[%d]", k), "%q is not a mount option (name or name=value)", o)
			}
		}
	}
	return errors.Join(errs...)
}

// Name is how messages name the entry: its device or serial.
func (d Disk) Name() string {
	if d.Device != "" {
		return d.Device
	}
	return "serial " + d.Serial
}
