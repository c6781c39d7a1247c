package updog_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"github.com/gantry-os/gantry/pkg/version"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/update/manifest"
	"github.com/gantry-os/gantry/internal/update/signpost"
	"github.com/gantry-os/gantry/internal/update/tufrepo"
	"github.com/gantry-os/gantry/internal/update/updog"
	"github.com/gantry-os/gantry/pkg/osrelease"
)

// fixture is a real update repository served over HTTP on 127.0.0.1 and a
// real GPT disk image whose set A runs version 1.0.0.
type fixture struct {
	t       *testing.T
	dir     string
	repo    *tufrepo.Repo
	key     *tufrepo.Key
	srv     *httptest.Server
	disk    string
	images  map[string][]byte // the 1.1.0 release's images by kind
	release osrelease.Release
}

func v(s string) version.Semver {
	ver, err := version.Parse(s)
	if err != nil {
		panic(err)
	}
	return ver
}

func newFixture(t *testing.T, imageMiB int) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, dir: t.TempDir(), images: map[string][]byte{}}
	kp, err := tufrepo.GenerateKey(filepath.Join(f.dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	if f.key, err = tufrepo.LoadKey(kp.Private); err != nil {
		t.Fatal(err)
	}
	one := tufrepo.RoleKeys{Keys: []*tufrepo.Key{f.key}}
	if f.repo, err = tufrepo.Create(ctx, filepath.Join(f.dir, "repo"), tufrepo.CreateOptions{Root: one, Targets: one, Snapshot: one, Timestamp: one}); err != nil {
		t.Fatal(err)
	}
	// The image a node ships is the repository's root.json at build time.
	root, _ := os.ReadFile(f.repo.RootPath())
	os.WriteFile(filepath.Join(f.dir, "root.json"), root, 0o644)
	f.addRelease("1.1.0", imageMiB)
	f.srv = httptest.NewServer(tufrepo.Handler(f.repo.Dir()))
	t.Cleanup(f.srv.Close)

	layout, err := disklayout.Plan(disklayout.Options{OSImageGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	f.disk = filepath.Join(f.dir, "disk.img")
	if err := disklayout.WriteFile(f.disk, layout.OS); err != nil {
		t.Fatal(err)
	}
	f.release = osrelease.Release{VariantID: "metal-dev", VersionID: "1.0.0", Arch: "x86_64"}
	return f
}

// addRelease publishes version ver with random images (part random, part
// zeros) and a migration.
func (f *fixture) addRelease(ver string, imageMiB int) {
	f.t.Helper()
	paths := map[string]string{}
	for kind, size := range map[string]int{"boot": 1 << 20, "root": imageMiB << 20, "hash": 256 << 10} {
		b := make([]byte, size)
		rand.Read(b[:size/2])
		f.images[kind] = b
		paths[kind] = filepath.Join(f.dir, ver+"-"+kind+".img")
		os.WriteFile(paths[kind], b, 0o644)
	}
	mig := filepath.Join(f.dir, "migration")
	os.WriteFile(mig, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	name := "migrate_v" + ver + "_example"
	_, err := f.repo.AddRelease(context.Background(), tufrepo.Release{
		Variant: "metal-dev", Arch: "x86_64", Version: v(ver), Boot: paths["boot"], Root: paths["root"], Hash: paths["hash"],
		Migrations:  []tufrepo.Migration{{Name: name, Path: mig}},
		Transitions: map[manifest.Transition][]string{{From: v("1.0.0"), To: v(ver)}: {name + ".zst"}},
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) node(cache string) *updog.Node {
	return &updog.Node{
		Config: updog.Config{
			MetadataBaseURL: f.srv.URL + "/metadata/", TargetsBaseURL: f.srv.URL + "/targets/", VersionLock: "latest",
			TrustedRoot: filepath.Join(f.dir, "root.json"), MetadataDir: filepath.Join(cache, "metadata"),
			MigrationsDir: filepath.Join(cache, "migrations"), Release: f.release,
		},
		OpenSets: updog.OpenSignpost(f.disk, "A"),
	}
}

func (f *fixture) state() *signpost.State {
	f.t.Helper()
	st, err := signpost.Load(f.disk, disklayout.SetA)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// partitionHash hashes a partition's first n bytes.
func (f *fixture) partition(set disklayout.SetID, kind string, n int) []byte {
	f.t.Helper()
	s, err := f.state().Set(set)
	if err != nil {
		f.t.Fatal(err)
	}
	p := map[string]disklayout.Partition{"boot": s.Boot, "root": s.Root, "hash": s.Hash}[kind]
	sec, err := disklayout.OpenPartition(f.disk, p.Number, os.O_RDONLY)
	if err != nil {
		f.t.Fatal(err)
	}
	defer sec.Close()
	b := make([]byte, n)
	if _, err := sec.ReadAt(b, 0); err != nil {
		f.t.Fatal(err)
	}
	return b
}

func TestUpdateEndToEnd(t *testing.T) {
	f := newFixture(t, 4)
	ctx := context.Background()
	n := f.node(t.TempDir())
	avail, chosen, client, err := n.Check(ctx, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if chosen == nil || chosen.Version != v("1.1.0") || len(avail) != 1 {
		t.Fatalf("chosen %+v of %d", chosen, len(avail))
	}
	activeRoot := sha256.Sum256(f.partition(disklayout.SetA, "root", 4<<20))
	if err := n.WriteImage(ctx, client, chosen); err != nil {
		t.Fatal(err)
	}
	for kind, img := range f.images {
		if got := f.partition(disklayout.SetB, kind, len(img)); !bytes.Equal(got, img) {
			t.Errorf("inactive %s partition does not hold the %s image", kind, kind)
		}
	}
	if sha256.Sum256(f.partition(disklayout.SetA, "root", 4<<20)) != activeRoot {
		t.Fatal("the active set's root changed")
	}
	st := f.state()
	if p := st.Prio(disklayout.SetB); p.Priority != 0 || p.TriesLeft != 1 {
		t.Fatalf("after writing: B = %+v, want priority 0 and one try", p)
	}
	if next, _ := signpost.SimulateBoot(f.state()); next != disklayout.SetA {
		t.Fatalf("a written but not activated update booted: %s", next)
	}
	cached, _ := os.ReadDir(n.Config.MigrationsDir)
	if len(cached) != 2 {
		t.Fatalf("migrations cache holds %d files, want the migration and the manifest", len(cached))
	}
	if err := n.Activate(); err != nil {
		t.Fatal(err)
	}
	st = f.state()
	if next, _ := signpost.SimulateBoot(st); next != disklayout.SetB {
		t.Fatalf("after activate the next boot is %s", next)
	}
	if err := n.Revert(); err != nil {
		t.Fatal(err)
	}
	if next, _ := signpost.SimulateBoot(f.state()); next != disklayout.SetA {
		t.Fatalf("after revert the next boot is %s", next)
	}

	// Nothing to do on 1.1.0; a version lock back to 1.0.0 offers nothing
	// that is not published; another variant or arch is refused.
	n.Config.Release.VersionID = "1.1.0"
	if _, chosen, _, err := n.Check(ctx, nil, false); err != nil || chosen != nil {
		t.Fatalf("on 1.1.0: %v %v", chosen, err)
	}
	other := *chosen
	other.Variant = "metal-k8s-1.37"
	if err := n.WriteImage(ctx, client, &other); err == nil || !strings.Contains(err.Error(), "variant") {
		t.Fatalf("cross-variant update: %v", err)
	}
	other = *chosen
	other.Arch = "aarch64"
	if err := n.WriteImage(ctx, client, &other); err == nil || !strings.Contains(err.Error(), "aarch64") {
		t.Fatalf("cross-arch update: %v", err)
	}
}

// tamper rewrites every stored target of the repository whose name
// contains nameContains (older manifests included), failing unless one changed.
func (f *fixture) tamper(nameContains string, change func([]byte) []byte) {
	f.t.Helper()
	entries, _ := os.ReadDir(f.repo.TargetsDir())
	changed := false
	for _, e := range entries {
		if strings.Contains(e.Name(), nameContains) {
			p := filepath.Join(f.repo.TargetsDir(), e.Name())
			b, _ := os.ReadFile(p)
			nb := change(append([]byte(nil), b...))
			changed = changed || !bytes.Equal(b, nb)
			os.WriteFile(p, nb, 0o644)
		}
	}
	if !changed {
		f.t.Fatalf("no target like %s was changed", nameContains)
	}
}

func TestCorruptTargetsNeverBecomeBootable(t *testing.T) {
	tests := []struct {
		name   string
		change func([]byte) []byte
	}{
		{"a flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }},
		{"extra bytes (endless data)", func(b []byte) []byte { return append(b, make([]byte, 4096)...) }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-10] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 2)
			f.tamper("root.img.zst", tt.change)
			n := f.node(t.TempDir())
			_, chosen, client, err := n.Check(context.Background(), nil, false)
			if err != nil {
				t.Fatal(err)
			}
			err = n.WriteImage(context.Background(), client, chosen)
			if !errors.Is(err, updog.ErrVerify) {
				t.Fatalf("WriteImage = %v, want ErrVerify", err)
			}
			if p := f.state().Prio(disklayout.SetB); p.TriesLeft != 0 || p.Priority != 0 || p.Successful {
				t.Fatalf("B after a corrupt target: %+v", p)
			}
			if next, _ := signpost.SimulateBoot(f.state()); next != disklayout.SetA {
				t.Fatalf("next boot %s", next)
			}
		})
	}
}

// copyDir snapshots the repository's metadata so a test can serve an old
// state later.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	os.MkdirAll(dst, 0o755)
	entries, _ := os.ReadDir(src)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(src, e.Name()))
		os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
	}
}

func TestTUFAttacks(t *testing.T) {
	ctx := context.Background()
	t.Run("rollback to older metadata", func(t *testing.T) {
		f := newFixture(t, 1)
		old := filepath.Join(t.TempDir(), "old-metadata")
		copyDir(t, f.repo.MetadataDir(), old)
		f.addRelease("1.2.0", 1)
		cache := t.TempDir()
		if _, err := updog.Open(ctx, f.node(cache).Config); err != nil {
			t.Fatal(err)
		}
		// The attacker serves the older, validly signed metadata.
		os.RemoveAll(f.repo.MetadataDir())
		copyDir(t, old, f.repo.MetadataDir())
		if _, err := updog.Open(ctx, f.node(cache).Config); err == nil {
			t.Fatal("the client accepted older metadata after seeing newer")
		}
	})
	t.Run("indefinite freeze (expired metadata)", func(t *testing.T) {
		f := newFixture(t, 1)
		r, err := tufrepo.Open(f.repo.Dir(), tufrepo.Options{Targets: []*tufrepo.Key{f.key}, Snapshot: []*tufrepo.Key{f.key}, Timestamp: []*tufrepo.Key{f.key},
			Now: func() time.Time { return time.Now().Add(-30 * 24 * time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Refresh(ctx, tufrepo.RefreshOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := updog.Open(ctx, f.node(t.TempDir()).Config); err == nil || !strings.Contains(strings.ToLower(err.Error()), "expire") {
			t.Fatalf("expired metadata: %v", err)
		}
	})
	t.Run("endless data (oversized metadata)", func(t *testing.T) {
		f := newFixture(t, 1)
		p := filepath.Join(f.repo.MetadataDir(), "timestamp.json")
		b, _ := os.ReadFile(p)
		os.WriteFile(p, append(b, bytes.Repeat([]byte(" "), 2<<20)...), 0o644)
		if _, err := updog.Open(ctx, f.node(t.TempDir()).Config); err == nil {
			t.Fatal("an oversized timestamp.json was accepted")
		}
	})
	t.Run("mix and match (metadata of another repository)", func(t *testing.T) {
		f := newFixture(t, 1)
		g := newFixture(t, 1) // same versions, other keys
		b, _ := os.ReadFile(filepath.Join(g.repo.MetadataDir(), "timestamp.json"))
		os.WriteFile(filepath.Join(f.repo.MetadataDir(), "timestamp.json"), b, 0o644)
		if _, err := updog.Open(ctx, f.node(t.TempDir()).Config); err == nil {
			t.Fatal("a timestamp signed by another repository's key was accepted")
		}
	})
	t.Run("threshold not met", func(t *testing.T) {
		f := newFixture(t, 1)
		entries, _ := os.ReadDir(f.repo.MetadataDir())
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".targets.json") {
				continue
			}
			p := filepath.Join(f.repo.MetadataDir(), e.Name())
			var doc map[string]any
			b, _ := os.ReadFile(p)
			json.Unmarshal(b, &doc)
			doc["signatures"] = []any{}
			b, _ = json.Marshal(doc)
			os.WriteFile(p, b, 0o644)
		}
		if _, err := updog.Open(ctx, f.node(t.TempDir()).Config); err == nil {
			t.Fatal("unsigned targets metadata was accepted")
		}
	})
	t.Run("arbitrary target (manifest swapped)", func(t *testing.T) {
		f := newFixture(t, 1)
		f.tamper("manifest.json", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"1.1.0"`), []byte(`"9.9.9"`), 1)
		})
		if _, err := updog.Open(ctx, f.node(t.TempDir()).Config); err == nil {
			t.Fatal("a manifest that does not match its signed hash was accepted")
		}
	})
	t.Run("root rotation", func(t *testing.T) {
		f := newFixture(t, 1)
		kp, _ := tufrepo.GenerateKey(filepath.Join(f.dir, "newroot"))
		newKey, _ := tufrepo.LoadKey(kp.Private)
		r, err := tufrepo.Open(f.repo.Dir(), tufrepo.Options{Targets: []*tufrepo.Key{f.key}, Snapshot: []*tufrepo.Key{f.key}, Timestamp: []*tufrepo.Key{f.key}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.RotateRoot(ctx, tufrepo.RotateOptions{OldKeys: []*tufrepo.Key{f.key}, NewRoot: tufrepo.RoleKeys{Keys: []*tufrepo.Key{newKey}}}); err != nil {
			t.Fatal(err)
		}
		// The node still ships the old root and follows the chain.
		if _, err := updog.Open(ctx, f.node(t.TempDir()).Config); err != nil {
			t.Fatalf("a properly rotated root was refused: %v", err)
		}
		// A 3.root.json signed only by a key the chain never trusted is refused.
		b, _ := os.ReadFile(filepath.Join(f.repo.MetadataDir(), "2.root.json"))
		var doc map[string]any
		json.Unmarshal(b, &doc)
		doc["signed"].(map[string]any)["version"] = 3
		b, _ = json.Marshal(doc) // its signatures no longer match
		os.WriteFile(filepath.Join(f.repo.MetadataDir(), "3.root.json"), b, 0o644)
		if _, err := updog.Open(ctx, f.node(t.TempDir()).Config); err == nil {
			t.Fatal("an unsigned root rotation was accepted")
		}
	})
}
