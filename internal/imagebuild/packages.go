package imagebuild

import (
	"context"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/pkg/durable"
	"os"
	"slices"
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
	// lock was missing, stale, had drifted or --update-lock was given).
	resolved bool
	// why says why the closure was (re)computed.
	why string
	// drift is what changed against the previous lock, when there was one.
	drift []Drift
}

// Drift is one package whose lock line changed when the closure was
// resolved again: Old is empty for a package added, New for one removed.
type Drift struct {
	Package string `json:"package"`
	Old     string `json:"old,omitempty"`
	New     string `json:"new,omitempty"`
	Why     string `json:"why"`
}

// String is the drift line: package old → new (why).
func (d Drift) String() string {
	old, nw := d.Old, d.New
	if old == "" {
		old = "(none)"
	}
	if nw == "" {
		nw = "(removed)"
	}
	return fmt.Sprintf("%s %s → %s (%s)", d.Package, old, nw, d.Why)
}

// DriftError is a refused drift: the lock pins versions the archive no
// longer has, and the build was --locked or offline.
type DriftError struct {
	Lock  string
	Drift []Drift
	// Hint says what to do.
	Hint string
}

func (e *DriftError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s pins %d package version(s) that the archive no longer has:", e.Lock, len(e.Drift))
	for _, d := range e.Drift {
		fmt.Fprintf(&b, "\n  %s %s: %s", d.Package, d.Old, d.Why)
	}
	if e.Hint != "" {
		b.WriteString("\n" + e.Hint)
	}
	return b.String()
}

// packageSource is where a build's .debs come from: the cache, then the
// package store (a release's exported .debs), then the variant's archive
// through a private apt root (made on first use) unless offline.
type packageSource struct {
	cache *debCache
	// store, when set, is read before the archive; offline forbids the
	// archive altogether (a build from the store alone).
	store   *debCache
	offline bool
	arch    string
	dist    DistributionSpec
	apt     *aptRoot
	updated bool
	// found maps the SHA-256 of each .deb already checked to its verified
	// file (in the cache or the store), so no .deb is hashed twice.
	found map[string]string
}

func (s *packageSource) root(ctx context.Context) (*aptRoot, error) {
	if s.offline {
		return nil, errors.New("the build is offline (--store without the archive): apt is not used")
	}
	if s.apt == nil {
		a, err := newAptRoot(s.cache.dir, s.arch, s.dist)
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

// packageRequest is what is asked of apt: a variant's packages, or a
// container image's.
type packageRequest interface {
	Requested() []string
	Excluded() []string
}

// newLock is an empty lock for the variant's request and distribution.
func (s *packageSource) newLock(v packageRequest) (*Lock, error) {
	sum, _, err := hashFile(s.dist.Keyring)
	if err != nil {
		return nil, fmt.Errorf("distribution keyring: %w", err)
	}
	return &Lock{Arch: s.arch, Include: v.Requested(), Exclude: v.Excluded(),
		Distribution: s.dist.Name, Sources: s.dist.SourceLines(), Keyring: sum}, nil
}

// resolve returns the lock to build from.
//   - A missing or stale lock (another request or distribution), or
//     update, resolves the closure again with apt.
//   - Otherwise the lock stands while every .deb it pins is in the cache,
//     the store or the archive. Pins the archive no longer has are drift:
//     they are resolved again (keeping every other pin that still fits)
//     and the changes are returned, unless locked, which refuses drift.
func (s *packageSource) resolve(ctx context.Context, v packageRequest, existing *Lock, lockPath string, update, locked bool) (*resolveResult, error) {
	var why string
	switch {
	case existing == nil:
		why = "no packages.lock"
	case !existing.Matches(s.arch, v.Requested(), v.Excluded(), s.dist.SourceLines()):
		why = "packages.lock was resolved for another request or distribution (arch, include, exclude or sources changed)"
	case update:
		why = "--update-lock"
	}
	if why != "" {
		if locked {
			return nil, fmt.Errorf("resolve packages: %s, and --locked forbids resolving again", why)
		}
		if s.offline {
			return nil, fmt.Errorf("resolve packages: %s, and a build from the store alone cannot resolve", why)
		}
		lock, err := s.closure(ctx, v, nil)
		if err != nil {
			return nil, err
		}
		return &resolveResult{lock: lock, resolved: true, why: why, drift: diffLocks(existing, lock, nil, "re-resolved", "re-resolved")}, nil
	}

	missing, err := s.missing(existing)
	if err != nil || len(missing) == 0 {
		return &resolveResult{lock: existing}, err
	}
	if s.offline {
		var d []Drift
		for _, p := range missing {
			d = append(d, Drift{Package: p.Name, Old: p.Version, Why: "not in the package store"})
		}
		return nil, &DriftError{Lock: lockPath, Drift: d, Hint: "the store does not hold this lock's packages; export them with `gantry build --export-store`"}
	}
	a, err := s.root(ctx)
	if err != nil {
		return nil, fmt.Errorf("resolve packages: %w", err)
	}
	avail, err := a.versions(ctx, missing)
	if err != nil {
		return nil, fmt.Errorf("resolve packages: %w", err)
	}
	gone := map[string]string{}
	var refused []Drift
	for _, p := range missing {
		if slices.Contains(avail[p.Name], p.Version) {
			continue
		}
		why := fmt.Sprintf("%s left the archive", p.Version)
		if len(avail[p.Name]) > 0 {
			why += "; it has " + strings.Join(avail[p.Name], ", ")
		} else {
			why += "; it has no version of " + p.Name
		}
		gone[p.Name] = why
		refused = append(refused, Drift{Package: p.Name, Old: p.Version, Why: why})
	}
	if len(gone) == 0 {
		return &resolveResult{lock: existing}, nil
	}
	if locked {
		return nil, &DriftError{Lock: lockPath, Drift: refused,
			Hint: "--locked refuses drift: rebuild from the release's package store (--store), or re-resolve without --locked and commit the lock"}
	}
	changed := "needed by the new versions"
	lock, err := s.closure(ctx, v, pinsExcept(existing, gone))
	if err != nil {
		// The kept pins do not fit the new versions: resolve it all again.
		changed = "re-resolved: the other pins did not fit the new versions"
		if lock, err = s.closure(ctx, v, nil); err != nil {
			return nil, err
		}
	}
	return &resolveResult{lock: lock, resolved: true, why: "pinned versions left the archive",
		drift: diffLocks(existing, lock, gone, changed, "new dependency")}, nil
}

// missing lists the lock's packages that neither the cache nor the store
// holds, and records the verified files of the others in s.found.
func (s *packageSource) missing(lock *Lock) ([]LockedPackage, error) {
	if s.found == nil {
		s.found = map[string]string{}
	}
	var out []LockedPackage
	for _, p := range lock.Packages {
		if _, ok := s.found[p.SHA256]; ok {
			continue
		}
		path := s.cache.path(p.SHA256)
		ok, err := s.cache.has(p.SHA256)
		if err == nil && !ok && s.store != nil {
			path = s.store.path(p.SHA256)
			ok, err = s.store.has(p.SHA256)
		}
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", p.Name, err)
		}
		if !ok {
			out = append(out, p)
			continue
		}
		s.found[p.SHA256] = path
	}
	return out, nil
}

// pinsExcept is name=version for every locked package but the gone ones.
func pinsExcept(l *Lock, gone map[string]string) []string {
	var pins []string
	for _, p := range l.Packages {
		if _, g := gone[p.Name]; !g {
			pins = append(pins, p.Name+"="+p.Version)
		}
	}
	return pins
}

// closure asks apt for the closure of the variant's request plus pins
// (name=version), with each .deb's SHA-256 from the signed package lists.
func (s *packageSource) closure(ctx context.Context, v packageRequest, pins []string) (*Lock, error) {
	a, err := s.root(ctx)
	if err != nil {
		return nil, fmt.Errorf("resolve packages: %w", err)
	}
	stubs, err := a.excludeStubs(ctx, v.Excluded())
	if err != nil {
		return nil, fmt.Errorf("resolve packages: %w", err)
	}
	if err := a.writeStatus(stubs); err != nil {
		return nil, err
	}
	want, err := a.closure(ctx, append(v.Requested(), pins...))
	if err != nil {
		return nil, fmt.Errorf("resolve packages: %w", err)
	}
	// An excluded package is present for apt; it may still list it as an
	// upgrade of the stub ("Inst systemd [old] (new ...)"), which is not
	// installed either.
	for _, x := range v.Excluded() {
		delete(want, x)
	}
	sums, err := a.indexHashes(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("resolve packages: %w", err)
	}
	lock, err := s.newLock(v)
	if err != nil {
		return nil, err
	}
	for name, ver := range want {
		lock.Packages = append(lock.Packages, LockedPackage{Name: name, Version: ver, SHA256: sums[name]})
	}
	sort.Slice(lock.Packages, func(i, j int) bool { return lock.Packages[i].Name < lock.Packages[j].Name })
	return lock, nil
}

// diffLocks lists what changed from old to new. gone gives the reason of
// the pins that left the archive; other changed versions get changedWhy and
// packages new to the lock addedWhy.
func diffLocks(old, nw *Lock, gone map[string]string, changedWhy, addedWhy string) []Drift {
	if old == nil {
		return nil
	}
	var out []Drift
	for _, p := range old.Packages {
		q, ok := nw.Find(p.Name)
		switch {
		case ok && q.Version == p.Version && q.SHA256 == p.SHA256:
			continue
		case gone[p.Name] != "":
			out = append(out, Drift{Package: p.Name, Old: p.Version, New: q.Version, Why: gone[p.Name]})
		case !ok:
			out = append(out, Drift{Package: p.Name, Old: p.Version, Why: "no longer needed"})
		case q.Version == p.Version:
			out = append(out, Drift{Package: p.Name, Old: p.Version, New: q.Version, Why: "the archive's .deb changed (SHA-256)"})
		default:
			out = append(out, Drift{Package: p.Name, Old: p.Version, New: q.Version, Why: changedWhy})
		}
	}
	for _, q := range nw.Packages {
		if _, ok := old.Find(q.Name); !ok {
			out = append(out, Drift{Package: q.Name, New: q.Version, Why: addedWhy})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Package < out[j].Package })
	return out
}

// fetch returns the lock's .debs from the cache or the store, downloading
// the exact missing versions with apt; each file must have the lock's
// SHA-256. With export set, every .deb is also put into that store.
func (s *packageSource) fetch(ctx context.Context, lock *Lock, tmp string, export *debCache) ([]pkgFile, int, error) {
	missing, err := s.missing(lock)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch packages: %w", err)
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
			s.found[sum] = s.cache.path(sum)
		}
	}
	files := make([]pkgFile, 0, len(lock.Packages))
	for _, p := range lock.Packages {
		path := s.found[p.SHA256]
		fi, err := os.Stat(path)
		if err != nil {
			return nil, 0, fmt.Errorf("fetch %s: %w", p.Name, err)
		}
		if export != nil {
			if _, _, err := export.add(path); err != nil {
				return nil, 0, fmt.Errorf("export %s to the package store: %w", p.Name, err)
			}
		}
		files = append(files, pkgFile{LockedPackage: p, Path: path, Size: fi.Size()})
	}
	return files, len(missing), nil
}

// writeLock writes the lock file atomically.
func writeLock(path, variant string, l *Lock) error {
	if err := durable.WriteFile(path, l.Marshal(variant), 0o644); err != nil {
		return err
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
