package imagebuild

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/gantry-os/gantry/disklayout"
)

// diskOptions are the inputs of the disk images.
type diskOptions struct {
	layout              *disklayout.Layout
	boot, root, hash    string // the set A images
	out, dataOut        string // the OS disk, and the data disk (split plan)
	epoch               int64
	privateUUID, dataID string
	privateSeed, dataHS string
}

// makeDisk writes the OS disk image: the GPT of the layout, set A's BOOT,
// ROOT and HASH filled, set B empty, PRIVATE formatted, and in the unified
// plan DATA-A formatted. In the split plan it also writes the data disk with
// DATA-B formatted. Both are sparse.
func makeDisk(ctx context.Context, work string, o diskOptions) error {
	setA, err := o.layout.OS.Partitions.Set(disklayout.SetA)
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	for _, f := range []struct {
		what, path string
		part       disklayout.Partition
	}{{"boot.img", o.boot, setA.Boot}, {"root.img", o.root, setA.Root}, {"hash.img", o.hash, setA.Hash}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			return fmt.Errorf("disk: %w", err)
		}
		if fi.Size() > f.part.Size {
			return fmt.Errorf("disk: %s is %s but partition %s holds %s; raise image.os-image-size-gib or shrink the image",
				f.what, mb(fi.Size()), f.part.Name, mb(f.part.Size))
		}
	}
	// The data partition that boot-time discovery would pick gets a
	// filesystem and the GPT name GANTRY-DATA, which the mount units find
	// it by: DATA-A in the unified plan, DATA-B (its own disk) in the split
	// plan. The split plan's 1 MiB DATA-A stays empty and unnamed.
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
	data := dataDisk.Partitions[di]

	if err := newImage(o.out, o.layout.OS); err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		part disklayout.Partition
	}{{o.boot, setA.Boot}, {o.root, setA.Root}, {o.hash, setA.Hash}} {
		if err := fillPartition(o.out, f.part, f.path); err != nil {
			return err
		}
	}
	priv, err := o.layout.OS.Partitions.Private()
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	privImg := work + "/private.ext4"
	if err := makeExt4(ctx, work, privImg, ext4Options{
		label: disklayout.NamePrivate, size: priv.Size, uuid: o.privateUUID, hashSeed: o.privateSeed, epoch: o.epoch,
		extra: []string{"-b", "4096", "-i", "4096", "-I", "256"},
	}); err != nil {
		return fmt.Errorf("disk: PRIVATE: %w", err)
	}
	defer os.Remove(privImg)
	if err := fillPartition(o.out, priv, privImg); err != nil {
		return err
	}

	dataImage := o.out
	if o.layout.Data != nil {
		dataImage = o.dataOut
		if err := newImage(dataImage, *o.layout.Data); err != nil {
			return err
		}
	}
	dataImg := work + "/data.ext4"
	if err := makeExt4(ctx, work, dataImg, ext4Options{
		label: disklayout.NameData, size: data.Size, uuid: o.dataID, hashSeed: o.dataHS, epoch: o.epoch,
		extra: []string{"-m", "0"},
	}); err != nil {
		return fmt.Errorf("disk: DATA: %w", err)
	}
	defer os.Remove(dataImg)
	if err := fillPartition(dataImage, data, dataImg); err != nil {
		return err
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
