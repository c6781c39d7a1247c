package imagebuild

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestDrift moves a real (signed, file:) archive on under a lock, as a
// Debian point or security release does, and resolves with a fresh cache
// each time, as a new machine would.
func TestDrift(t *testing.T) {
	needTools(t, "apt-get", "apt-cache", "dpkg-deb")
	ctx := context.Background()
	dir := t.TempDir()
	a := newTestArchive(t, dir)
	deb := func(name, ver, control string) {
		fakeDeb(t, dir, name, ver, control, []fakeFile{{path: "/usr/share/" + name + "/" + ver, data: ver}})
	}
	drop := func(name, ver string) {
		if err := os.Remove(filepath.Join(dir, fmt.Sprintf("%s_%s_amd64.deb", name, ver))); err != nil {
			t.Fatal(err)
		}
	}
	deb("fake-kernel", "1.0", "")
	deb(BootLoaderPackage, "1.0", "")
	deb("fake-a", "1.0", "Depends: fake-b (>= 1.0)\n")
	deb("fake-b", "1.0", "")
	deb("fake-c", "1.0", "Depends: fake-d (= 1.0)\n")
	deb("fake-d", "1.0", "")
	a.publish(t)
	v, err := ParseVariant([]byte(`name = "drift-dev"
`+a.distribution()+`
[kernel]
package = "fake-kernel"
[packages]
include = ["fake-a", "fake-c"]
[gantry]
commands = ["apiserver"]
[settings]
groups = ["motd"]
`), filepath.Join(t.TempDir(), VariantFile))
	if err != nil {
		t.Fatal(err)
	}
	source := func() *packageSource {
		c, release, err := openCache(ctx, t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(release)
		return &packageSource{cache: c, arch: "amd64", dist: v.Distribution}
	}
	versions := func(l *Lock) map[string]string {
		m := map[string]string{}
		for _, p := range l.Packages {
			m[p.Name] = p.Version
		}
		return m
	}

	src := source()
	first, err := src.resolve(ctx, v, nil, "packages.lock", false, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(first.lock); len(got) != 6 || got["fake-b"] != "1.0" || first.drift != nil {
		t.Fatalf("first lock %v, drift %v", got, first.drift)
	}
	if first.lock.Distribution != "fake" || !slices.Equal(first.lock.Sources, v.Distribution.SourceLines()) || len(first.lock.Keyring) != 64 {
		t.Errorf("the lock does not record the distribution: %q %v %q", first.lock.Distribution, first.lock.Sources, first.lock.Keyring)
	}
	if _, _, err := src.fetch(ctx, first.lock, t.TempDir(), nil); err != nil {
		t.Fatal(err)
	}

	// fake-b 1.0 leaves the archive for 1.1; fake-a 1.1 appears.
	drop("fake-b", "1.0")
	deb("fake-b", "1.1", "")
	deb("fake-a", "1.1", "Depends: fake-b (>= 1.0)\n")
	a.publish(t)

	// The cache that holds the pinned .debs needs no archive: no drift.
	if rr, err := src.resolve(ctx, v, first.lock, "packages.lock", false, true); err != nil || rr.resolved {
		t.Errorf("with every pinned .deb cached: resolved %v, %v", rr != nil && rr.resolved, err)
	}

	// --locked on a new machine refuses, naming the pin and the archive's.
	_, err = source().resolve(ctx, v, first.lock, "packages.lock", false, true)
	var de *DriftError
	if !errors.As(err, &de) || len(de.Drift) != 1 || de.Drift[0].Why != "1.0 left the archive; it has 1.1" {
		t.Fatalf("--locked: %v", err)
	}

	// A default build re-resolves fake-b only: fake-a stays 1.0 although
	// the archive has 1.1.
	second, err := source().resolve(ctx, v, first.lock, "packages.lock", false, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []Drift{{Package: "fake-b", Old: "1.0", New: "1.1", Why: "1.0 left the archive; it has 1.1"}}
	if !second.resolved || !slices.Equal(second.drift, want) {
		t.Errorf("drift %+v, want %+v", second.drift, want)
	}
	if got := versions(second.lock); got["fake-a"] != "1.0" || got["fake-b"] != "1.1" || got["fake-c"] != "1.0" {
		t.Errorf("second lock %v: only fake-b should move", got)
	}
	if _, _, err := source().fetch(ctx, second.lock, t.TempDir(), nil); err != nil {
		t.Errorf("fetch the re-resolved lock: %v", err)
	}

	// fake-d 1.0 leaves, and the fake-c 1.0 pin needs exactly it: the kept
	// pins cannot stand, so the closure is resolved from the candidates.
	drop("fake-d", "1.0")
	deb("fake-d", "1.1", "")
	deb("fake-c", "1.1", "Depends: fake-d (= 1.1)\n")
	a.publish(t)
	third, err := source().resolve(ctx, v, second.lock, "packages.lock", false, false)
	if err != nil {
		t.Fatal(err)
	}
	refit := "re-resolved: the other pins did not fit the new versions"
	want = []Drift{
		{Package: "fake-a", Old: "1.0", New: "1.1", Why: refit},
		{Package: "fake-c", Old: "1.0", New: "1.1", Why: refit},
		{Package: "fake-d", Old: "1.0", New: "1.1", Why: "1.0 left the archive; it has 1.1"},
	}
	if !slices.Equal(third.drift, want) {
		t.Errorf("drift %+v, want %+v", third.drift, want)
	}
}

func TestDiffLocks(t *testing.T) {
	sum := func(c string) string { return fmt.Sprintf("%064s", c) }
	old := &Lock{Packages: []LockedPackage{{"a", "1", sum("a")}, {"b", "1", sum("b")}, {"c", "1", sum("c")}, {"d", "1", sum("d")}}}
	nw := &Lock{Packages: []LockedPackage{{"a", "1", sum("a")}, {"b", "2", sum("b2")}, {"c", "1", sum("c2")}, {"e", "1", sum("e")}}}
	got := diffLocks(old, nw, map[string]string{"b": "1 left the archive"}, "changed", "added")
	want := []Drift{
		{Package: "b", Old: "1", New: "2", Why: "1 left the archive"},
		{Package: "c", Old: "1", New: "1", Why: "the archive's .deb changed (SHA-256)"},
		{Package: "d", Old: "1", Why: "no longer needed"},
		{Package: "e", New: "1", Why: "added"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("diffLocks = %+v\nwant %+v", got, want)
	}
	if diffLocks(nil, nw, nil, "", "") != nil {
		t.Error("no old lock: no drift")
	}
	if s := want[3].String(); s != "e (none) → 1 (added)" {
		t.Errorf("String = %q", s)
	}
}
