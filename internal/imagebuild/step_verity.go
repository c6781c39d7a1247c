package imagebuild

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/gantry-os/gantry/internal/boot/verity"
)

// stepVerity makes the root's dm-verity hash tree; its root hash goes on the
// kernel command line.
func stepVerity(ctx context.Context, b *builder) (string, error) {
	b.hashImg = filepath.Join(b.work, "hash.img")
	vr, err := verity.Create(ctx, b.rootImg, b.hashImg, verity.Options{})
	if err != nil {
		return "", fmt.Errorf("verity: %w", err)
	}
	b.vr = vr
	return fmt.Sprintf("root hash %s, %d data blocks, %s of hashes", vr.RootHash, vr.DataBlocks, mb(vr.HashSize)), nil
}
