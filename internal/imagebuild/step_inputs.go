package imagebuild

import (
	"context"
	"fmt"
)

// stepInputs resolves the variant, version, build ID, epoch and folders.
func stepInputs(ctx context.Context, b *builder) (string, error) {
	in, err := resolveInputs(ctx, b.o)
	if err != nil {
		return "", err
	}
	b.in, b.v = in, in.variant
	return fmt.Sprintf("%s %s %s, build %s, epoch %d", b.v.Name, b.v.Arch, b.v.Version, in.buildID, in.epoch), nil
}
