package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// ParseSize reads a disk size: bytes, or a number with a binary suffix K,
// M, G or T (4G is 4 GiB). The empty string is 0, the image's own size.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B")
	if t == "" {
		return 0, nil
	}
	shift := 0
	if i := strings.IndexAny(t, "KMGT"); i == len(t)-1 {
		shift = 10 * (strings.IndexByte("KMGT", t[i]) + 1)
		t = t[:i]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("size %q: want a number of bytes, or one with K, M, G or T (e.g. 4G)", s)
	}
	return n << shift, nil
}

// resizeDisk makes a new disk o.DiskSize bytes long: the image, then zeros.
// The node grows its data partition into them at its first boot.
func resizeDisk(ctx context.Context, o Options, d disk) error {
	if o.DiskSize == 0 {
		return nil
	}
	fi, err := os.Stat(o.Image)
	if err != nil {
		return fmt.Errorf("disk size: %w", err)
	}
	switch {
	case o.DiskSize < fi.Size():
		return fmt.Errorf("disk size %d is smaller than the image %s (%d bytes)", o.DiskSize, o.Image, fi.Size())
	case o.DiskSize == fi.Size():
		return nil
	case d.format == "qcow2":
		cmd := exec.CommandContext(ctx, o.QEMUImg, "resize", "-q", "-f", "qcow2", d.path, strconv.FormatInt(o.DiskSize, 10))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("resize %s to %d bytes: %w: %s", d.path, o.DiskSize, err, bytes.TrimSpace(out))
		}
	default:
		if err := os.Truncate(d.path, o.DiskSize); err != nil {
			return fmt.Errorf("resize %s: %w", d.path, err)
		}
	}
	o.Logger.Info("disk larger than the image", "disk", d.path, "size", o.DiskSize, "image_size", fi.Size())
	return nil
}
