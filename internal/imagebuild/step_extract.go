package imagebuild

import (
	"context"
	"fmt"
	"path/filepath"
)

// stepExtract unpacks the .debs into the staging tree, in name order, with
// no maintainer scripts (stage.go).
func stepExtract(ctx context.Context, b *builder) (string, error) {
	st, detail, err := extractAll(ctx, filepath.Join(b.work, "root"), b.files)
	b.st = st
	return detail + ", no maintainer scripts", err
}

// extractAll makes a staging tree in dir and unpacks files into it.
func extractAll(ctx context.Context, dir string, files []pkgFile) (*stage, string, error) {
	st, err := newStage(dir)
	if err != nil {
		return nil, "", err
	}
	for _, f := range files {
		if err := st.extractDeb(ctx, f.Path); err != nil {
			return st, "", fmt.Errorf("extract packages: %s: %w", f.Name, err)
		}
	}
	nf, nb, err := st.size()
	if err != nil {
		return st, "", err
	}
	return st, fmt.Sprintf("%d files, %s", nf, mb(nb)), nil
}
