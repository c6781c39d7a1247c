package imagebuild

import (
	"context"
	"fmt"
	"path/filepath"
)

// stepDisk lays out the whole-disk image (disk.go): set A filled, set B
// empty, PRIVATE and DATA left for the node's first boot.
func stepDisk(ctx context.Context, b *builder) (string, error) {
	in, v := b.in, b.v
	base := fmt.Sprintf("gantry-%s-%s-%s-%s", v.Name, v.Arch, v.Version, in.buildID)
	b.diskName = base + ".img"
	if in.layout.Data != nil {
		b.dataName = base + "-data.img"
	}
	if err := makeDisk(ctx, b.work, diskOptions{
		layout: in.layout, esp: b.espImg, boot: b.bootImg, root: b.rootImg, hash: b.hashImg,
		out: filepath.Join(b.work, b.diskName), dataOut: filepath.Join(b.work, b.dataName), epoch: in.epoch,
		privateUUID: in.uuid("private"), privateSeed: in.uuid("private-hash-seed"),
		dataID: in.uuid("data"), dataHS: in.uuid("data-hash-seed"),
	}); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s (%d GiB, %s plan; set A filled, set B empty)", b.diskName, in.layout.OS.Size>>30, v.Image.PartitionPlan), nil
}
