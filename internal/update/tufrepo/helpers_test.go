package tufrepo

import (
	"bytes"
	"context"
	"github.com/gantry-os/gantry/pkg/version"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/gantry-os/gantry/internal/update/manifest"
)

// t0 is the fixed clock the tests publish at: repositories they build
// expire relative to it, so Validate is given At explicitly.
var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func clock(t time.Time) func() time.Time { return func() time.Time { return t } }

// genKey writes a key pair under dir and loads its private half.
func genKey(t *testing.T, dir, name string) *Key {
	t.Helper()
	kp, err := GenerateKey(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	k, err := LoadKey(kp.Private)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type fixture struct {
	dir, keyDir string
	keys        map[string]*Key
	repo        *Repo
}

// newFixture creates a repository with one key per role, at t0.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: filepath.Join(t.TempDir(), "repo"), keyDir: t.TempDir(), keys: map[string]*Key{}}
	for _, role := range topRoles() {
		f.keys[role] = genKey(t, f.keyDir, role)
	}
	r, err := Create(context.Background(), f.dir, CreateOptions{
		Root:      RoleKeys{Keys: []*Key{f.keys[RoleRoot]}},
		Targets:   RoleKeys{Keys: []*Key{f.keys[RoleTargets]}},
		Snapshot:  RoleKeys{Keys: []*Key{f.keys[RoleSnapshot]}},
		Timestamp: RoleKeys{Keys: []*Key{f.keys[RoleTimestamp]}},
		Now:       clock(t0),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.repo = r
	return f
}

// open opens the fixture's repository with its keys and a clock.
func (f *fixture) open(t *testing.T, now time.Time) *Repo {
	t.Helper()
	r, err := Open(f.dir, Options{
		Targets: []*Key{f.keys[RoleTargets]}, Snapshot: []*Key{f.keys[RoleSnapshot]}, Timestamp: []*Key{f.keys[RoleTimestamp]},
		Now: clock(now),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) validate(at time.Time) (*Report, error) {
	return Validate(context.Background(), ValidateOptions{Dir: f.dir, At: at})
}

// writeFile writes a small file under dir.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testRelease returns a release of small fake images with one migration.
func testRelease(t *testing.T, ver string) (Release, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	v, err := version.Parse(ver)
	if err != nil {
		t.Fatal(err)
	}
	content := map[string][]byte{
		"boot": bytes.Repeat([]byte("boot-"+ver), 1000),
		"root": bytes.Repeat([]byte("root-"+ver), 5000),
		"hash": []byte("hash-" + ver),
		"mig":  []byte("#!/bin/sh\necho migrate " + ver + "\n"),
	}
	mig := Migration{Name: "migrate_v" + ver + "_test", Path: writeFile(t, dir, "mig", content["mig"])}
	return Release{
		Variant: "metal-dev", Arch: "x86_64", Version: v,
		Boot:       writeFile(t, dir, "boot.img", content["boot"]),
		Root:       writeFile(t, dir, "root.img", content["root"]),
		Hash:       writeFile(t, dir, "hash.img", content["hash"]),
		Migrations: []Migration{mig},
		Transitions: map[manifest.Transition][]string{
			{From: version.Semver{Major: v.Major, Minor: v.Minor - 1}, To: v}: {mig.TargetName()},
		},
		Waves: manifest.DefaultWaves(),
	}, content
}

// storedTarget returns the path of a target's file as the targets
// metadata names it.
func storedTarget(t *testing.T, dir, name string) string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, TargetsDirName))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.load()
	if err != nil {
		t.Fatal(err)
	}
	tf := st.targets.Signed.Targets[name]
	if tf == nil {
		t.Fatalf("no target %s", name)
	}
	p, err := r.targetPath(name, tf)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if filepath.Join(dir, TargetsDirName, e.Name()) == p {
			return p
		}
	}
	t.Fatalf("target %s: %s is not in the targets directory", name, p)
	return ""
}

func decompress(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(d); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
}
