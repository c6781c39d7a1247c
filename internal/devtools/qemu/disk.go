package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/pkg/durable"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Disk modes.
const (
	diskOverlay = "overlay"
	diskCopy    = "copy"
)

// Files of the node's disk in the run directory.
const (
	runOverlay = "disk.qcow2"
	runCopy    = "disk.img"
	// runDiskSource records which image file the disk came from.
	runDiskSource = "disk.source"
)

// disk is the node's writable disk.
type disk struct {
	path, format string
	// reused is true when a previous run's disk was kept.
	reused bool
}

// imageStamp identifies an image file's content well enough to notice a
// rebuild: its absolute path, size and modification time.
func imageStamp(image string) (string, error) {
	fi, err := os.Stat(image)
	if err != nil {
		return "", fmt.Errorf("disk image: %w", err)
	}
	return fmt.Sprintf("%s\n%d\n%d\n", image, fi.Size(), fi.ModTime().UnixNano()), nil
}

// prepareDisk returns the node's disk in runDir: the one a previous run
// left when it came from the same image (unless fresh), or a new qcow2
// overlay backed by the image (mode overlay, or "" with qemu-img present),
// or a sparse copy of the image.
func prepareDisk(ctx context.Context, o Options) (disk, error) {
	stamp, err := imageStamp(o.Image)
	if err != nil {
		return disk{}, err
	}
	srcFile := filepath.Join(o.RunDir, runDiskSource)
	if !o.Fresh {
		old, err := os.ReadFile(srcFile)
		if err == nil && string(old) == stamp {
			for _, d := range []disk{{filepath.Join(o.RunDir, runOverlay), "qcow2", true}, {filepath.Join(o.RunDir, runCopy), "raw", true}} {
				if _, err := os.Stat(d.path); err != nil {
					continue
				}
				if d.format == "qcow2" && o.Boot == BootDisk {
					return convertToRaw(ctx, o, d.path)
				}
				o.Logger.Info("keeping the disk of the previous run (same image)", "disk", d.path)
				return d, nil
			}
		} else if err == nil {
			o.Logger.Info("the image changed since the last run: starting from a new disk", "image", o.Image)
		}
	}
	for _, f := range []string{runDiskSource, runOverlay, runCopy} {
		if err := os.Remove(filepath.Join(o.RunDir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return disk{}, fmt.Errorf("remove old disk: %w", err)
		}
	}

	mode := o.DiskMode
	if mode == "" {
		mode = diskCopy
		if _, err := exec.LookPath(o.QEMUImg); err == nil {
			mode = diskOverlay
		}
	}
	var d disk
	switch mode {
	case diskOverlay:
		d = disk{path: filepath.Join(o.RunDir, runOverlay), format: "qcow2"}
		cmd := exec.CommandContext(ctx, o.QEMUImg, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", o.Image, d.path)
		if out, err := cmd.CombinedOutput(); err != nil {
			return disk{}, fmt.Errorf("create overlay %s on %s: %w: %s", d.path, o.Image, err, bytes.TrimSpace(out))
		}
	default:
		d = disk{path: filepath.Join(o.RunDir, runCopy), format: "raw"}
		if err := sparseCopy(ctx, d.path, o.Image); err != nil {
			return disk{}, err
		}
	}
	if err := resizeDisk(ctx, o, d); err != nil {
		return disk{}, err
	}
	if err := durable.WriteFile(srcFile, []byte(stamp), 0o644); err != nil {
		return disk{}, err
	}
	o.Logger.Info("new disk", "disk", d.path, "mode", mode, "image", o.Image)
	return d, nil
}

// convertToRaw turns the qcow2 overlay a previous run left into a sparse raw
// disk, keeping its content (the datastore among it), because the boot
// loader reads and writes the disk as a raw image.
func convertToRaw(ctx context.Context, o Options, overlay string) (disk, error) {
	d := disk{path: filepath.Join(o.RunDir, runCopy), format: "raw", reused: true}
	tmp := d.path + ".tmp-" + strconv.Itoa(os.Getpid())
	cmd := exec.CommandContext(ctx, o.QEMUImg, "convert", "-q", "-f", "qcow2", "-O", "raw", "-S", "4k", overlay, tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return disk{}, fmt.Errorf("convert the previous run's overlay %s to a raw disk for the boot loader: %w: %s", overlay, err, bytes.TrimSpace(out))
	}
	if err := os.Rename(tmp, d.path); err != nil {
		os.Remove(tmp)
		return disk{}, fmt.Errorf("convert the previous run's overlay: %w", err)
	}
	if err := os.Remove(overlay); err != nil {
		return disk{}, fmt.Errorf("convert the previous run's overlay: %w", err)
	}
	o.Logger.Info("kept the disk of the previous run, converted from qcow2 to raw for the boot loader", "disk", d.path)
	return d, nil
}

// sparseCopy copies src to dst, writing only src's data extents
// (SEEK_DATA/SEEK_HOLE), so a mostly empty image stays sparse. A file
// system without SEEK_DATA gets a plain copy.
func sparseCopy(ctx context.Context, dst, src string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy disk image: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("copy disk image: %w", err)
	}
	tmp := dst + ".tmp-" + strconv.Itoa(os.Getpid())
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("copy disk image: %w", err)
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmp)
		}
	}()
	size := fi.Size()
	if err := out.Truncate(size); err != nil {
		return fmt.Errorf("copy disk image: %w", err)
	}
	const seekData, seekHole = 3, 4 // lseek(2) SEEK_DATA, SEEK_HOLE
	buf := make([]byte, 1<<20)
	copyRange := func(from, to int64) error {
		for off := from; off < to; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := int64(len(buf))
			if to-off < n {
				n = to - off
			}
			r, err := in.ReadAt(buf[:n], off)
			if r > 0 {
				if _, werr := out.WriteAt(buf[:r], off); werr != nil {
					return werr
				}
				off += int64(r)
			}
			if err != nil && !(errors.Is(err, io.EOF) && off >= to) {
				return err
			}
		}
		return nil
	}
	for off := int64(0); off < size; {
		data, err := in.Seek(off, seekData)
		if err != nil {
			if errors.Is(err, syscall.ENXIO) { // only a hole is left
				break
			}
			if errors.Is(err, syscall.EINVAL) && off == 0 { // no SEEK_DATA here
				if err := copyRange(0, size); err != nil {
					return fmt.Errorf("copy disk image: %w", err)
				}
				break
			}
			return fmt.Errorf("copy disk image: seek data: %w", err)
		}
		hole, err := in.Seek(data, seekHole)
		if err != nil {
			return fmt.Errorf("copy disk image: seek hole: %w", err)
		}
		if err := copyRange(data, hole); err != nil {
			return fmt.Errorf("copy disk image: %w", err)
		}
		off = hole
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy disk image: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("copy disk image: %w", err)
	}
	return nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
