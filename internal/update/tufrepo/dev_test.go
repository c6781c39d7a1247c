package tufrepo

import (
	"context"
	"github.com/gantry-os/gantry/pkg/version"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEnsureDev: the key and the repository are each made once, what
// exists is kept, and a repository near its expiry is re-signed.
func TestEnsureDev(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// prepare makes the state the directory is in before EnsureDev.
		prepare                func(t *testing.T, dir string)
		at                     time.Time
		wantErr                string
		wantCreated, wantKey   bool
		wantRefreshed, wantNew bool // wantNew: the root.json differs from the one prepared
	}{
		{name: "empty directory", prepare: func(*testing.T, string) {}, at: t0, wantCreated: true, wantKey: true},
		{name: "missing directory", prepare: func(t *testing.T, dir string) { os.RemoveAll(dir) }, at: t0, wantCreated: true, wantKey: true},
		{name: "kept as it is", prepare: func(t *testing.T, dir string) { ensureDev(t, dir, t0) }, at: t0.Add(time.Hour)},
		{name: "a key without a repository gets one", prepare: func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Join(dir, DevKeysDirName), 0o700)
			if _, err := GenerateKey(DevKeyPath(dir)); err != nil {
				t.Fatal(err)
			}
		}, at: t0, wantCreated: true},
		{name: "re-signed a day before the timestamp expires", prepare: func(t *testing.T, dir string) { ensureDev(t, dir, t0) },
			at: t0.Add(DefaultTimestampExpiry - DevRefreshMargin + time.Minute), wantRefreshed: true},
		{name: "re-signed after it expired", prepare: func(t *testing.T, dir string) { ensureDev(t, dir, t0) },
			at: t0.Add(DefaultTargetsExpiry + time.Hour), wantRefreshed: true},
		{name: "a repository without its key", prepare: func(t *testing.T, dir string) {
			ensureDev(t, dir, t0)
			os.Remove(DevKeyPath(dir))
		}, at: t0, wantErr: "not its key"},
		{name: "a public key in place of the private one", prepare: func(t *testing.T, dir string) {
			ensureDev(t, dir, t0)
			b, _ := os.ReadFile(DevKeyPath(dir) + PublicKeySuffix)
			os.WriteFile(DevKeyPath(dir), b, 0o600)
		}, at: t0, wantErr: "not a private key"},
		{name: "a repository of other keys", prepare: func(t *testing.T, dir string) {
			f := newFixture(t)
			os.RemoveAll(dir)
			if err := os.Rename(f.dir, dir); err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(filepath.Join(dir, DevKeysDirName), 0o700)
			GenerateKey(DevKeyPath(dir))
		}, at: t0, wantErr: "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "repo")
			os.MkdirAll(dir, 0o755)
			tt.prepare(t, dir)
			keyBefore, _ := os.ReadFile(DevKeyPath(dir))
			rootBefore, _ := os.ReadFile(filepath.Join(dir, MetadataDirName, "root.json"))

			d, err := EnsureDev(ctx, dir, clock(tt.at))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("EnsureDev: %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Created != tt.wantCreated || d.KeyCreated != tt.wantKey || d.Refreshed != tt.wantRefreshed {
				t.Errorf("created %v, key created %v, refreshed %v; want %v, %v, %v",
					d.Created, d.KeyCreated, d.Refreshed, tt.wantCreated, tt.wantKey, tt.wantRefreshed)
			}
			if d.KeyPath() != DevKeyPath(dir) || d.RootPath() != filepath.Join(dir, MetadataDirName, "root.json") {
				t.Errorf("paths: key %s, root %s", d.KeyPath(), d.RootPath())
			}
			if keyBefore != nil {
				if keyAfter, _ := os.ReadFile(DevKeyPath(dir)); string(keyAfter) != string(keyBefore) {
					t.Error("the key was replaced")
				}
			}
			if rootBefore != nil {
				if rootAfter, _ := os.ReadFile(d.RootPath()); string(rootAfter) != string(rootBefore) {
					t.Error("root.json was replaced: images built before no longer trust the repository")
				}
			}
			if st, err := os.Stat(filepath.Dir(DevKeyPath(dir))); err != nil || st.Mode().Perm() != 0o700 {
				t.Errorf("keys folder: %v, mode %v", err, st.Mode())
			}
			// The repository is valid and signed by the key, at that time.
			rep, err := Validate(ctx, ValidateOptions{Dir: dir, At: tt.at})
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			if exp := rep.Expires[RoleTimestamp]; tt.wantRefreshed && !exp.After(tt.at.Add(DevRefreshMargin)) {
				t.Errorf("timestamp expires %s after a refresh at %s", exp, tt.at)
			}
			// Running it again changes nothing.
			d2, err := EnsureDev(ctx, dir, clock(tt.at))
			if err != nil {
				t.Fatal(err)
			}
			if d2.Created || d2.KeyCreated || d2.Refreshed {
				t.Errorf("second EnsureDev: created %v, key created %v, refreshed %v", d2.Created, d2.KeyCreated, d2.Refreshed)
			}
		})
	}
}

func ensureDev(t *testing.T, dir string, at time.Time) *Dev {
	t.Helper()
	d, err := EnsureDev(context.Background(), dir, clock(at))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestEnsureRelease: a release is published once; the same version with
// other images, or with a target gone, is published again.
func TestEnsureRelease(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	d := ensureDev(t, dir, t0)
	img := t.TempDir()
	for name, body := range map[string]string{"boot.img": strings.Repeat("boot", 1000), "root.img": strings.Repeat("root", 3000), "hash.img": "hash"} {
		writeFile(t, img, name, []byte(body))
	}
	rel := Release{Variant: "metal-dev", Arch: "x86_64", Version: version.Semver{Minor: 1},
		Boot: filepath.Join(img, "boot.img"), Root: filepath.Join(img, "root.img"), Hash: filepath.Join(img, "hash.img")}
	other := rel
	other.Version = version.Semver{Minor: 2}

	steps := []struct {
		name        string
		change      func(t *testing.T)
		rel         Release
		wantPublish bool
	}{
		{name: "first time", rel: rel, wantPublish: true},
		{name: "again", rel: rel},
		{name: "another version", rel: other, wantPublish: true},
		{name: "the first one is still there", rel: rel},
		{name: "a rebuild of the same version", change: func(t *testing.T) { writeFile(t, img, "root.img", []byte("rebuilt")) }, rel: rel, wantPublish: true},
		{name: "after the rebuild", rel: rel},
		{name: "a target file gone", change: func(t *testing.T) {
			ms, _ := filepath.Glob(filepath.Join(d.TargetsDir(), "*."+ImageTargetName("metal-dev", "x86_64", rel.Version, "hash")))
			for _, m := range ms {
				os.Remove(m)
			}
		}, rel: rel, wantPublish: true},
		{name: "repaired", rel: rel},
	}
	for _, s := range steps {
		if s.change != nil {
			s.change(t)
		}
		pub, err := d.EnsureRelease(ctx, s.rel)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if (pub != nil) != s.wantPublish {
			t.Errorf("%s: published %v, want %v", s.name, pub != nil, s.wantPublish)
		}
		has, err := d.HasRelease(ctx, s.rel)
		if err != nil || !has {
			t.Errorf("%s: HasRelease after EnsureRelease: %v, %v", s.name, has, err)
		}
	}
	if _, err := Validate(ctx, ValidateOptions{Dir: dir, At: t0}); err != nil {
		t.Errorf("validate: %v", err)
	}
	if _, err := d.HasRelease(ctx, Release{Variant: "metal-dev", Arch: "x86_64", Boot: rel.Boot, Root: rel.Root}); err == nil {
		t.Error("HasRelease without a hash image: no error")
	}
}
