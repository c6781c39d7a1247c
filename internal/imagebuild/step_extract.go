package imagebuild

import (
	"context"
	"fmt"
	"path/filepath"
)

// stepExtract unpacks the .debs into the staging tree, in name order, with
// no maintainer scripts (stage.go).
func stepExtract(ctx context.Context, b *builder) (string, error) {
	st, err := newStage(filepath.Join(b.work, "root"))
	if err != nil {
		return "", err
	}
	b.st = st
	for _, f := range b.files {
		if err := st.extractDeb(ctx, f.Path); err != nil {
			return "", fmt.Errorf("extract packages: %s: %w", f.Name, err)
		}
	}
	nf, nb, err := st.size()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d files, %s, no maintainer scripts", nf, mb(nb)), nil
}
