package imagebuild

import (
	"context"
	"fmt"
)

// stepFetch puts the lock's .debs in the cache (or finds them in the
// package store), exports them when asked, releases the cache and, the lock
// being final, plans the disk.
func stepFetch(ctx context.Context, b *builder) (string, error) {
	var export *debCache
	var err error
	if b.o.ExportStore != "" {
		if export, err = openStore(b.o.ExportStore, true); err != nil {
			return "", err
		}
	}
	files, downloaded, err := b.src.fetch(ctx, b.lock, b.work, export)
	if err != nil {
		return "", err
	}
	b.files = files
	var debBytes int64
	for _, f := range files {
		debBytes += f.Size
	}
	from := fmt.Sprintf("%d downloaded", downloaded)
	if b.src.offline {
		from = "from the package store, offline"
	}
	if export != nil {
		if err := export.addLock(fmt.Sprintf("%s-%s-%s.lock", b.v.Name, b.v.Version, b.in.buildID), b.lock.Marshal(b.v.Name)); err != nil {
			return "", err
		}
		from += ", exported to " + b.o.ExportStore
	}
	b.unlock()
	if err := b.in.plan(b.lock); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d .debs, %s (%s, SHA-256 verified)", len(files), mb(debBytes), from), nil
}
