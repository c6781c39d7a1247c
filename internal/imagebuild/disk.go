package imagebuild

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
)

// diskOptions are the inputs of the disk images.
type diskOptions struct {
	layout           *disklayout.Layout
	esp              string // the EFI system partition's image, for EFI-A
	boot, root, hash string // the set A images
	out, dataOut     string // the OS disk, and the data disk (split plan)
	// Not used: PRIVATE and DATA are formatted on the node at first boot,
	// so the image has no filesystem times, UUIDs or hash seeds to fix.
	epoch               int64
	privateUUID, dataID string
	privateSeed, dataHS string
}

// makeDisk writes the OS disk image: the GPT of the layout, the ESP in
// EFI-A (EFI-B stays empty), set A's BOOT, ROOT and HASH filled, set B,
// PRIVATE and DATA empty. In the split plan it
// also writes the data disk, with DATA-B empty. Both are sparse, and the
// empty partitions read as zeros.
func makeDisk(ctx context.Context, work string, o diskOptions) error {
	setA, err := o.layout.OS.Partitions.Set(disklayout.SetA)
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	efiA, ok := o.layout.OS.Partitions.ByRole("EFI-A")
	if !ok {
		return fmt.Errorf("disk: no EFI-A partition in the layout")
	}
	for _, f := range []struct {
		what, path string
		part       disklayout.Partition
	}{{"esp.img", o.esp, efiA}, {"boot.img", o.boot, setA.Boot}, {"root.img", o.root, setA.Root}, {"hash.img", o.hash, setA.Hash}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			return fmt.Errorf("disk: %w", err)
		}
		if fi.Size() > f.part.Size {
			return fmt.Errorf("disk: %s is %s but partition %s holds %s; raise image.os-image-size-gib or shrink the image",
				f.what, mb(fi.Size()), f.part.Name, mb(f.part.Size))
		}
	}
	// The data partition that boot-time discovery would pick gets the GPT
	// name GANTRY-DATA, which prepare-local-fs and the mount units find it
	// by: DATA-A in the unified plan, DATA-B (its own disk) in the split
	// plan. The split plan's 1 MiB DATA-A stays unnamed.
	dataDisk := &o.layout.OS
	if o.layout.Data != nil {
		dataDisk = o.layout.Data
	}
	di := -1
	for i, p := range dataDisk.Partitions {
		if p.Kind == disklayout.KindData && strings.EqualFold(p.GUID, disklayout.DataPreferredGUID) {
			di = i
		}
	}
	if di < 0 {
		return fmt.Errorf("disk: no preferred data partition in the layout")
	}
	dataDisk.Partitions[di].Name = disklayout.NameData

	if err := newImage(o.out, o.layout.OS); err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		part disklayout.Partition
	}{{o.esp, efiA}, {o.boot, setA.Boot}, {o.root, setA.Root}, {o.hash, setA.Hash}} {
		if err := fillPartition(o.out, f.part, f.path); err != nil {
			return err
		}
	}
	// PRIVATE and DATA stay holes, which read as zeros: the node formats
	// them at first boot (prepare-local-fs, package localfs).
	dataImage := o.out
	if o.layout.Data != nil {
		dataImage = o.dataOut
		if err := newImage(dataImage, *o.layout.Data); err != nil {
			return err
		}
	}
	for _, img := range []string{o.out, dataImage} {
		if err := disklayout.Verify(img); err != nil {
			return fmt.Errorf("disk: %w", err)
		}
	}
	return nil
}

// newImage creates an empty image file of the disk's size with its GPT.
func newImage(path string, d disklayout.Disk) error {
	os.Remove(path)
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if err := disklayout.WriteFile(path, d); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	return nil
}

// fillPartition writes an image into a partition of a disk image.
func fillPartition(disk string, p disklayout.Partition, img string) error {
	sec, err := disklayout.OpenPartition(disk, p.Number, os.O_RDWR)
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if _, err := copySparse(sec, img, 0); err != nil {
		sec.Close()
		return fmt.Errorf("disk: writing %s into %s: %w", img, p.Role(), err)
	}
	if err := sec.Close(); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	return nil
}
