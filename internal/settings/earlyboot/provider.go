// Package earlyboot owns early-boot-config: at a node's first boot it
// gathers user data from providers (local files, QEMU fw_cfg, a config disk,
// AWS IMDS), parses and merges it in order, validates it against the
// variant's settings model, and only then sends it, in one PATCH, to the
// launch transaction; a marker file makes every later boot skip the run.
package earlyboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gantry-os/gantry/internal/settings/userdata"
)

// Provider is one source of user data.
type Provider interface {
	// Name names the provider in messages ("local-defaults", "imds").
	Name() string
	// Fetch returns the raw user data, or nil when this provider has none
	// here (a missing file, no fw_cfg entry, no config disk, IMDS 404).
	Fetch(ctx context.Context) ([]byte, error)
}

// Sourcer is implemented by providers that can say where exactly their data
// is (a path, a device, a URL); errors then name that place with the line.
type Sourcer interface {
	Source() string
}

// sourceOf is p's Source, or else its Name.
func sourceOf(p Provider) string {
	if s, ok := p.(Sourcer); ok {
		return s.Source()
	}
	return p.Name()
}

// FileProvider reads user data from a local file; a missing file means none.
type FileProvider struct {
	// Label names the provider; "" means "file".
	Label string
	Path  string
}

// Name implements Provider.
func (p FileProvider) Name() string {
	if p.Label != "" {
		return p.Label
	}
	return "file"
}

// Source implements Sourcer.
func (p FileProvider) Source() string { return p.Path }

// Fetch implements Provider.
func (p FileProvider) Fetch(ctx context.Context) ([]byte, error) {
	return readOptionalFile(ctx, p.Path)
}

// FwCfgPath is where QEMU's fw_cfg entry opt/gantry/user-data appears below
// sysfs (the qemu_fw_cfg driver must be loaded).
const FwCfgPath = "firmware/qemu_fw_cfg/by_name/opt/gantry/user-data/raw"

// FwCfgProvider reads user data that QEMU passes with
// -fw_cfg name=opt/gantry/user-data,file=user-data.toml.
type FwCfgProvider struct {
	// Sysfs is the sysfs root; "" means /sys.
	Sysfs string
}

// Name implements Provider.
func (p FwCfgProvider) Name() string { return "fw_cfg" }

// Source implements Sourcer.
func (p FwCfgProvider) Source() string {
	root := p.Sysfs
	if root == "" {
		root = "/sys"
	}
	return filepath.Join(root, FwCfgPath)
}

// Fetch implements Provider; no fw_cfg device or entry means none.
func (p FwCfgProvider) Fetch(ctx context.Context) ([]byte, error) {
	return readOptionalFile(ctx, p.Source())
}

// readOptionalFile reads at most userdata.MaxSize bytes of path; a missing
// file (or missing directory on the way) is nil data and no error.
func readOptionalFile(ctx context.Context, path string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open user data: %w", err)
	}
	defer f.Close()
	data, err := readLimited(f, userdata.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// readLimited reads all of r, refusing more than limit bytes. The result is
// never nil, so "present but empty" stays distinct from "none".
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge{limit}
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// errTooLarge refuses user data over the size limit.
type errTooLarge struct{ limit int64 }

func (e errTooLarge) Error() string {
	return fmt.Sprintf("user data is larger than the limit of %d bytes", e.limit)
}
