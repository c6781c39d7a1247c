//go:build linux

package dm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ControlPath is the device-mapper control node. devtmpfs creates it when
// dm_mod loads; Open makes it (character 10:236) if it is missing.
const ControlPath = "/dev/mapper/control"

// Control is an open /dev/mapper/control. It is safe for sequential use;
// each method is one or a few ioctls.
type Control struct {
	f *os.File
}

// Open opens the device-mapper control node.
func Open() (*Control, error) {
	f, err := os.OpenFile(ControlPath, os.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(ControlPath), 0o755); err != nil {
			return nil, fmt.Errorf("open device-mapper control: %w", err)
		}
		if err := unix.Mknod(ControlPath, unix.S_IFCHR|0o600, int(unix.Mkdev(10, 236))); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("open device-mapper control: mknod %s: %w (is dm_mod loaded?)", ControlPath, err)
		}
		f, err = os.OpenFile(ControlPath, os.O_RDWR|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open device-mapper control: %w", err)
	}
	return &Control{f: f}, nil
}

// Close closes the control node.
func (c *Control) Close() error { return c.f.Close() }

// ioctl runs one DM ioctl with h and payload in a buffer of at least
// bufSize bytes, growing the buffer while the kernel says the reply did not
// fit. It returns the reply header and the reply's data area.
func (c *Control) ioctl(ctx context.Context, cmd uint, h header, payload []byte, bufSize int) (header, []byte, error) {
	for {
		if err := ctx.Err(); err != nil {
			return header{}, nil, err
		}
		h.Version = [3]uint32{VersionMajor, versionMinor, versionPatch}
		buf, err := h.encode(payload, bufSize)
		if err != nil {
			return header{}, nil, err
		}
		sc, err := c.f.SyscallConn()
		if err != nil {
			return header{}, nil, err
		}
		var errno unix.Errno
		if err := sc.Control(func(fd uintptr) {
			_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, uintptr(ioctlNumber(cmd)), uintptr(unsafe.Pointer(&buf[0])))
		}); err != nil {
			return header{}, nil, err
		}
		if errno != 0 {
			return header{}, nil, errno
		}
		rh, err := decodeHeader(buf)
		if err != nil {
			return header{}, nil, err
		}
		if rh.Flags&FlagBufferFull != 0 && bufSize < 1<<22 {
			bufSize = max(bufSize, headerSize) * 4
			continue
		}
		end := min(int(rh.DataSize), len(buf))
		start := min(int(rh.DataStart), end)
		return rh, buf[start:end], nil
	}
}

// Version returns the kernel's DM ioctl interface version.
func (c *Control) Version(ctx context.Context) ([3]uint32, error) {
	h, _, err := c.ioctl(ctx, cmdVersion, header{}, nil, 0)
	if err != nil {
		return [3]uint32{}, fmt.Errorf("dm version: %w", err)
	}
	return h.Version, nil
}

// CreateOptions are the options of Create.
type CreateOptions struct {
	// UUID is the DM UUID (optional, unique among DM devices).
	UUID string
	// ReadOnly loads the table read-only, as verity needs.
	ReadOnly bool
}

// Create creates device name, loads targets as its table and resumes it, so
// the device is live when Create returns. On failure the half-made device
// is removed.
func (c *Control) Create(ctx context.Context, name string, targets []Target, opts CreateOptions) (Device, error) {
	payload, err := encodeTargets(targets)
	if err != nil {
		return Device{}, fmt.Errorf("dm create %s: %w", name, err)
	}
	h, _, err := c.ioctl(ctx, cmdDevCreate, header{Name: name, UUID: opts.UUID}, nil, 0)
	if err != nil {
		return Device{}, fmt.Errorf("dm create %s: DM_DEV_CREATE: %w", name, err)
	}
	major, minor := decodeDev(h.Dev)
	dev := Device{Name: name, Major: major, Minor: minor}
	fail := func(step string, err error) (Device, error) {
		// Best effort: the device is useless without its table.
		_, _, _ = c.ioctl(context.Background(), cmdDevRemove, header{Name: name}, nil, 0)
		return Device{}, fmt.Errorf("dm create %s: %s: %w", name, step, err)
	}
	flags := uint32(0)
	if opts.ReadOnly {
		flags |= FlagReadOnly
	}
	if _, _, err := c.ioctl(ctx, cmdTableLoad, header{Name: name, Flags: flags, TargetCount: uint32(len(targets))}, payload, 0); err != nil {
		return fail("DM_TABLE_LOAD "+targets[0].String(), err)
	}
	// DM_DEV_SUSPEND without DM_SUSPEND_FLAG resumes the device, making
	// the loaded table live.
	if _, _, err := c.ioctl(ctx, cmdDevSuspend, header{Name: name}, nil, 0); err != nil {
		return fail("resume", err)
	}
	return dev, nil
}

// CreateVerity creates a read-only dm-verity device from v. It is Create
// with v's single target.
func (c *Control) CreateVerity(ctx context.Context, name string, v Verity) (Device, error) {
	t, err := v.Target()
	if err != nil {
		return Device{}, fmt.Errorf("dm create %s: %w", name, err)
	}
	return c.Create(ctx, name, []Target{t}, CreateOptions{ReadOnly: true})
}

// Remove removes device name. It fails with EBUSY while the device is open
// (e.g. mounted).
func (c *Control) Remove(ctx context.Context, name string) error {
	if _, _, err := c.ioctl(ctx, cmdDevRemove, header{Name: name}, nil, 0); err != nil {
		return fmt.Errorf("dm remove %s: %w", name, err)
	}
	return nil
}

// Status returns the status line of each of device name's targets (for
// verity: "V" or "C").
func (c *Control) Status(ctx context.Context, name string) ([]Status, error) {
	return c.tableStatus(ctx, name, 0)
}

// Table returns device name's live table.
func (c *Control) Table(ctx context.Context, name string) ([]Target, error) {
	ss, err := c.tableStatus(ctx, name, FlagStatusTbl)
	if err != nil {
		return nil, err
	}
	ts := make([]Target, len(ss))
	for i, s := range ss {
		ts[i] = s.Target
	}
	return ts, nil
}

func (c *Control) tableStatus(ctx context.Context, name string, flags uint32) ([]Status, error) {
	h, data, err := c.ioctl(ctx, cmdTableStatus, header{Name: name, Flags: flags}, nil, 16<<10)
	if err != nil {
		return nil, fmt.Errorf("dm status %s: %w", name, err)
	}
	ts, err := decodeTargets(data, h.TargetCount)
	if err != nil {
		return nil, fmt.Errorf("dm status %s: %w", name, err)
	}
	out := make([]Status, len(ts))
	for i, t := range ts {
		out[i] = Status{Target: t}
	}
	return out, nil
}

// WaitNode waits until d's device node /dev/dm-<minor> exists (devtmpfs
// creates it asynchronously) or ctx ends. If the node has not appeared after
// a second (no devtmpfs on /dev), WaitNode makes it itself.
func WaitNode(ctx context.Context, d Device) (string, error) {
	p := d.Path()
	deadline := time.Now().Add(time.Second)
	for {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if time.Now().After(deadline) {
			err := unix.Mknod(p, unix.S_IFBLK|0o600, int(unix.Mkdev(d.Major, d.Minor)))
			if err == nil || errors.Is(err, unix.EEXIST) {
				return p, nil
			}
			return "", fmt.Errorf("device node %s did not appear and mknod failed: %w", p, err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %s: %w", p, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
