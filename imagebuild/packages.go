package imagebuild

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
)

// pkgFile is a locked package and its .deb in the cache.
type pkgFile struct {
	LockedPackage
	Path string
	Size int64
}

// resolveResult is what the resolve step decided.
type resolveResult struct {
	lock *Lock
	// resolved is true when apt computed the closure in this build (the
	// lock was missing, stale or --update-lock was given).
	resolved bool
	// why says why the closure was (re)computed.
	why string
}

// packageSource is the apt side of a build: the cache, the private apt
// root (made on first use) and the sources it copies.
type packageSource struct {
	cache      *debCache
	arch       string
	sourcesDir string
	apt        *aptRoot
	updated    bool
}

func (s *packageSource) root(ctx context.Context) (*aptRoot, error) {
	if s.apt == nil {
		a, err := newAptRoot(s.cache.dir, s.arch, s.sourcesDir)
		if err != nil {
			return nil, err
		}
		s.apt = a
	}
	if !s.updated {
		if err := s.apt.update(ctx); err != nil {
			return nil, err
		}
		s.updated = true
	}
	return s.apt, nil
}

// resolve returns the lock to build from: the existing one when it answers
// the variant's request (unless update is set), or a new closure from apt
// with the SHA-256 of each .deb from the (signed) package lists. With
// locked, a missing or stale lock is an error.
func (s *packageSource) resolve(ctx context.Context, v *Variant, existing *Lock, update, locked bool) (*resolveResult, error) {
	include, exclude := v.Requested(), v.Excluded()
	var why string
	switch {
	case existing == nil:
		why = "no packages.lock"
	case !existing.Matches(s.arch, include, exclude):
		why = "packages.lock was resolved for another request (arch, include or exclude changed)"
	case update:
		why = "--update-lock"
	default:
		return &resolveResult{lock: existing}, nil
	}
	if locked {
		return nil, fmt.Errorf("resolve packages: %s, and --locked forbids resolving again", why)
	}
	a, err := s.root(ctx)
	if err != nil {
		return nil, fmt.Errorf("resolve packages: %w", err)
	}
	stubs, err := a.excludeStubs(ctx, exclude)
	if err != nil {
		return nil, fmt.Errorf("resolve packages: %w", err)
	}
	if err := a.writeStatus(stubs); err != nil {
		return nil, err
	}
	want, err := a.closure(ctx, include)
	if err != nil {
		return nil, fmt.Errorf("resolve packages: %w", err)
	}
	sums, err := a.indexHashes(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("resolve packages: %w", err)
	}
	lock := &Lock{Arch: s.arch, Include: include, Exclude: exclude}
	for name, ver := range want {
		lock.Packages = append(lock.Packages, LockedPackage{Name: name, Version: ver, SHA256: sums[name]})
	}
	sort.Slice(lock.Packages, func(i, j int) bool { return lock.Packages[i].Name < lock.Packages[j].Name })
	return &resolveResult{lock: lock, resolved: true, why: why}, nil
}

// fetch returns the lock's .debs from the cache, downloading the exact
// missing versions with apt; each file must have the lock's SHA-256.
func (s *packageSource) fetch(ctx context.Context, lock *Lock, tmp string) ([]pkgFile, int, error) {
	var missing []LockedPackage
	for _, p := range lock.Packages {
		ok, err := s.cache.has(p.SHA256)
		if err != nil {
			return nil, 0, fmt.Errorf("fetch %s: %w", p.Name, err)
		}
		if !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		a, err := s.root(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("fetch packages: %w", err)
		}
		dir, err := os.MkdirTemp(tmp, "download-")
		if err != nil {
			return nil, 0, fmt.Errorf("fetch packages: %w", err)
		}
		defer os.RemoveAll(dir)
		specs := make([]string, len(missing))
		for i, p := range missing {
			specs[i] = p.Name + "=" + p.Version
		}
		if err := a.download(ctx, dir, specs); err != nil {
			return nil, 0, fmt.Errorf("fetch packages: %w", err)
		}
		idx, err := debsIn(ctx, dir)
		if err != nil {
			return nil, 0, fmt.Errorf("fetch packages: %w", err)
		}
		for _, p := range missing {
			path, ok := idx[p.Name+"="+p.Version]
			if !ok {
				return nil, 0, fmt.Errorf("fetch packages: apt did not download %s=%s", p.Name, p.Version)
			}
			sum, _, err := s.cache.add(path)
			if err != nil {
				return nil, 0, fmt.Errorf("fetch %s: %w", p.Name, err)
			}
			if sum != p.SHA256 {
				os.Remove(s.cache.path(sum))
				return nil, 0, fmt.Errorf("fetch %s=%s: the archive's .deb has SHA-256 %s, packages.lock says %s", p.Name, p.Version, sum, p.SHA256)
			}
		}
	}
	files := make([]pkgFile, 0, len(lock.Packages))
	for _, p := range lock.Packages {
		path := s.cache.path(p.SHA256)
		fi, err := os.Stat(path)
		if err != nil {
			return nil, 0, fmt.Errorf("fetch %s: %w", p.Name, err)
		}
		files = append(files, pkgFile{LockedPackage: p, Path: path, Size: fi.Size()})
	}
	return files, len(missing), nil
}

// writeLock writes the lock file atomically.
func writeLock(path, variant string, l *Lock) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, l.Marshal(variant), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// lockDigest is the part of the lock that determines the image.
func lockDigest(l *Lock) string {
	lines := make([]string, len(l.Packages))
	for i, p := range l.Packages {
		lines[i] = p.String()
	}
	return l.Arch + "\n" + strings.Join(lines, "\n")
}
