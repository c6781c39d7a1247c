package earlyboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	"github.com/gantry-os/gantry/internal/settings/userdata"
)

// The config disk: an ISO 9660 filesystem whose volume label is
// ConfigDiskLabel, with the user data in ConfigDiskFile at its root.
const (
	ConfigDiskLabel = "GANTRY-UD"
	ConfigDiskFile  = "user-data.toml"
	// configDiskShortName is ConfigDiskFile as a plain ISO 9660 (8.3) name,
	// for images made without Rock Ridge or Joliet.
	configDiskShortName = "USER_DAT.TOM"
)

// DefaultConfigDisk is where udev links the config disk by its label.
func DefaultConfigDisk(label string) string { return "/dev/disk/by-label/" + label }

// ConfigDiskProvider reads user-data.toml from an ISO 9660 filesystem on a
// block device or image file, directly, without mounting it.
type ConfigDiskProvider struct {
	// Device is the block device or image file; a missing one means none.
	Device string
	// Label is the volume label the filesystem must carry; "" accepts any.
	Label string
}

// Name implements Provider.
func (p ConfigDiskProvider) Name() string { return "config-disk" }

// Source implements Sourcer.
func (p ConfigDiskProvider) Source() string { return p.Device + ":" + ConfigDiskFile }

// Fetch implements Provider.
func (p ConfigDiskProvider) Fetch(ctx context.Context) (data []byte, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(p.Device)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open config disk: %w", err)
	}
	defer f.Close()
	// The filesystem reader trusts the image's structures; a corrupt image
	// must fail this provider, not the whole process.
	defer func() {
		if r := recover(); r != nil {
			data, err = nil, fmt.Errorf("config disk %s: corrupt ISO 9660 filesystem (%v)", p.Device, r)
		}
	}()
	return readConfigDisk(f, p.Device, p.Label)
}

func readConfigDisk(f *os.File, device, label string) ([]byte, error) {
	// Seeking to the end gives the size of block devices and files alike.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("config disk %s: size: %w", device, err)
	}
	fsys, err := iso9660.Read(file.New(f, true), size, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("config disk %s: not an ISO 9660 filesystem: %w", device, err)
	}
	defer fsys.Close()
	// The identifier is padded to 32 bytes: with spaces by the standard,
	// with NULs by some tools.
	if got := strings.Trim(fsys.Label(), " \x00"); label != "" && got != label {
		return nil, fmt.Errorf("config disk %s: volume label is %q, want %q", device, got, label)
	}
	entries, err := fsys.ReadDir(".")
	if err != nil {
		return nil, fmt.Errorf("config disk %s: read root directory: %w", device, err)
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		names = append(names, name)
		if e.IsDir() || !(strings.EqualFold(name, ConfigDiskFile) || strings.EqualFold(name, configDiskShortName)) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("config disk %s: %s: %w", device, name, err)
		}
		if info.Size() > userdata.MaxSize {
			return nil, fmt.Errorf("config disk %s: %s is %d bytes; the limit is %d", device, name, info.Size(), userdata.MaxSize)
		}
		rd, err := fsys.Open(name)
		if err != nil {
			return nil, fmt.Errorf("config disk %s: open %s: %w", device, name, err)
		}
		defer rd.Close()
		data, err := readLimited(rd, userdata.MaxSize)
		if err != nil {
			return nil, fmt.Errorf("config disk %s: read %s: %w", device, name, err)
		}
		return data, nil
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("config disk %s has no %s: its root directory is empty", device, ConfigDiskFile)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("config disk %s has no %s at its root (found: %s)", device, ConfigDiskFile, strings.Join(names, ", "))
}
