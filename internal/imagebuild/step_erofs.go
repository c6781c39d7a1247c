package imagebuild

import (
	"context"
	"fmt"
	"path/filepath"
)

// stepErofs makes the read-only root filesystem from the staging tree
// (mkfs.go).
func stepErofs(ctx context.Context, b *builder) (string, error) {
	b.rootImg = filepath.Join(b.work, "root.img")
	if err := makeErofs(ctx, b.st.dir, b.rootImg, erofsOptions{
		compression: b.v.Image.RootCompression, clusterKiB: b.v.Image.RootClusterKiB, epoch: b.in.epoch, uuid: b.in.uuid("root"),
	}); err != nil {
		return "", err
	}
	b.rootSize = fileSize(b.rootImg)
	return fmt.Sprintf("%s compressed from %s (%s)", mb(b.rootSize), mb(b.rootBytes), b.v.Image.RootCompression), nil
}
