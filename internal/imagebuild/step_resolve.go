package imagebuild

import (
	"context"
	"fmt"
)

// stepResolve takes the package lock, or resolves the closure with apt when
// the lock is missing, stale or has drifted from the archive (packages.go),
// and writes the new lock.
func stepResolve(ctx context.Context, b *builder) (string, error) {
	cache, release, err := openCache(ctx, b.in.cacheDir, func() { b.p.logf("waiting for another build to release the cache %s", b.in.cacheDir) })
	if err != nil {
		return "", err
	}
	b.release = release
	goarch, _ := debArch(b.v.Arch)
	b.src = &packageSource{cache: cache, arch: goarch, dist: b.v.Distribution}
	if b.o.Store != "" {
		b.src.offline = true
		if b.src.store, err = openStore(b.o.Store, false); err != nil {
			return "", err
		}
	}
	existing, err := ReadLock(b.in.lockPath)
	if err != nil && !b.o.UpdateLock {
		return "", err
	}
	if b.rr, err = b.src.resolve(ctx, b.v, existing, b.in.lockPath, b.o.UpdateLock, b.o.Locked); err != nil {
		return "", err
	}
	b.lock = b.rr.lock
	if !b.rr.resolved {
		return fmt.Sprintf("%d packages from %s", len(b.lock.Packages), b.in.lockPath), nil
	}
	if err := writeLock(b.in.lockPath, b.v.Name, b.lock); err != nil {
		return "", err
	}
	if len(b.rr.drift) > 0 {
		b.p.logf("PACKAGE DRIFT: %d lock line(s) changed (%s):", len(b.rr.drift), b.rr.why)
		for _, d := range b.rr.drift {
			b.p.logf("  %s", d)
		}
	}
	return fmt.Sprintf("%d packages resolved with apt (%s); wrote %s", len(b.lock.Packages), b.rr.why, b.in.lockPath), nil
}
