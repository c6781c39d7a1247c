package tufrepo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/pkg/version"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/gantry-os/gantry/internal/update/manifest"
)

func TestCreateLayout(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"1.root.json", "root.json", "1.targets.json", "1.snapshot.json", "timestamp.json"} {
		if _, err := os.Stat(filepath.Join(f.dir, MetadataDirName, name)); err != nil {
			t.Errorf("metadata/%s: %v", name, err)
		}
	}
	rep, err := f.validate(t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Manifest.Updates) != 0 || len(rep.Manifest.Migrations) != 0 {
		t.Errorf("new repository's manifest = %+v, want empty", rep.Manifest)
	}
	for role, v := range rep.Versions {
		if v != 1 {
			t.Errorf("%s version %d, want 1", role, v)
		}
	}
	want := map[string]time.Duration{RoleRoot: 52 * 7 * day, RoleTargets: 14 * day, RoleSnapshot: 14 * day, RoleTimestamp: 7 * day}
	for role, d := range want {
		if got := rep.Expires[role]; !got.Equal(t0.Add(d)) {
			t.Errorf("%s expires %s, want %s", role, got, t0.Add(d))
		}
	}
	var root metadata.Metadata[metadata.RootType]
	if _, err := root.FromFile(filepath.Join(f.dir, MetadataDirName, "1.root.json")); err != nil {
		t.Fatal(err)
	}
	if !root.Signed.ConsistentSnapshot {
		t.Error("root.json does not set consistent_snapshot")
	}
	if _, err := Create(context.Background(), f.dir, CreateOptions{
		Root: RoleKeys{Keys: []*Key{f.keys[RoleRoot]}}, Targets: RoleKeys{Keys: []*Key{f.keys[RoleTargets]}},
		Snapshot: RoleKeys{Keys: []*Key{f.keys[RoleSnapshot]}}, Timestamp: RoleKeys{Keys: []*Key{f.keys[RoleTimestamp]}},
	}); err == nil {
		t.Error("Create over an existing repository succeeded")
	}
}

func TestCreateThresholds(t *testing.T) {
	kd := t.TempDir()
	a, b := genKey(t, kd, "a"), genKey(t, kd, "b")
	pubB, err := LoadKey(filepath.Join(kd, "b.pub"))
	if err != nil {
		t.Fatal(err)
	}
	one := RoleKeys{Keys: []*Key{a}}
	tests := []struct {
		name string
		mod  func(*CreateOptions)
		want string // "" = success
	}{
		{"one key each", func(*CreateOptions) {}, ""},
		{"root threshold 2 of 2", func(o *CreateOptions) { o.Root = RoleKeys{Keys: []*Key{a, b}, Threshold: 2} }, ""},
		{"root threshold unmet", func(o *CreateOptions) { o.Root.Threshold = 2 }, "root role: threshold 2 is unmet"},
		{"same key twice counts once", func(o *CreateOptions) { o.Root = RoleKeys{Keys: []*Key{a, a}, Threshold: 2} }, "root role: threshold 2 is unmet"},
		{"targets threshold unmet", func(o *CreateOptions) { o.Targets.Threshold = 3 }, "targets role: threshold 3 is unmet"},
		{"snapshot without keys", func(o *CreateOptions) { o.Snapshot = RoleKeys{} }, "snapshot role: no key given"},
		{"timestamp threshold unmet", func(o *CreateOptions) { o.Timestamp.Threshold = 2 }, "timestamp role: threshold 2 is unmet"},
		{"public key beyond the threshold", func(o *CreateOptions) { o.Root = RoleKeys{Keys: []*Key{a, pubB}, Threshold: 1} }, ""},
		{"public key within the threshold", func(o *CreateOptions) { o.Root = RoleKeys{Keys: []*Key{a, pubB}, Threshold: 2} }, "public keys cannot sign: " + pubB.Path},
		{"negative threshold", func(o *CreateOptions) { o.Targets.Threshold = -1 }, "targets threshold -1"},
		{"targets keys public only", func(o *CreateOptions) { o.Targets = RoleKeys{Keys: []*Key{pubB}} }, "targets role: threshold 1 is unmet: only 0 distinct signing key(s) given; public keys cannot sign: " + pubB.Path},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := CreateOptions{Root: one, Targets: one, Snapshot: one, Timestamp: one, Now: clock(t0)}
			tt.mod(&opts)
			dir := filepath.Join(t.TempDir(), "repo")
			_, err := Create(context.Background(), dir, opts)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := Validate(context.Background(), ValidateOptions{Dir: dir, At: t0}); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tt.want)
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused Create left %s behind (%v)", dir, err)
			}
		})
	}
}

func TestAddReleaseThenValidate(t *testing.T) {
	f := newFixture(t)
	rel, content := testRelease(t, "1.1.0")
	pub, err := f.open(t, t0.Add(time.Hour)).AddRelease(context.Background(), rel)
	if err != nil {
		t.Fatal(err)
	}
	if pub.TargetsVersion != 2 || pub.SnapshotVersion != 2 || pub.TimestampVersion != 2 || pub.RootVersion != 1 {
		t.Errorf("versions after a release: %+v", pub)
	}
	rep, err := f.validate(t0.Add(2 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	boot := ImageTargetName("metal-dev", "x86_64", rel.Version, "boot")
	if boot != "gantry-metal-dev-x86_64-1.1.0-boot.img.zst" {
		t.Errorf("boot target named %s", boot)
	}
	if len(rep.Manifest.Updates) != 1 {
		t.Fatalf("manifest updates: %+v", rep.Manifest.Updates)
	}
	u := rep.Manifest.Updates[0]
	if u.Images.Boot != boot || u.Version != rel.Version || u.MaxVersion != rel.Version {
		t.Errorf("manifest update: %+v", u)
	}
	want, err := manifest.SetWaves(manifest.DefaultWaves(), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(u.Waves) != fmt.Sprint(want) {
		t.Errorf("waves %v, want %v", u.Waves, want)
	}
	tr := manifest.Transition{From: version.Semver{Major: 1}, To: rel.Version}
	if got := rep.Manifest.Migrations[tr]; len(got) != 1 || got[0] != "migrate_v1.1.0_test.zst" {
		t.Errorf("migrations %v", rep.Manifest.Migrations)
	}
	if len(rep.Targets) != 5 {
		t.Errorf("targets: %+v", rep.Targets)
	}
	// Targets are the zstd compression of the inputs, stored as <sha256>.<name>.
	for part, name := range map[string]string{"boot": u.Images.Boot, "root": u.Images.Root, "hash": u.Images.Hash, "mig": "migrate_v1.1.0_test.zst"} {
		if got := decompress(t, storedTarget(t, f.dir, name)); !bytes.Equal(got, content[part]) {
			t.Errorf("%s decompresses to %d bytes, want the %d of the input", name, len(got), len(content[part]))
		}
	}
	// The compressed target records what it decompresses to.
	st, err := f.repo.load()
	if err != nil {
		t.Fatal(err)
	}
	var c TargetCustom
	if err := json.Unmarshal(*st.targets.Signed.Targets[boot].Custom, &c); err != nil {
		t.Fatal(err)
	}
	if c.DecompressedLength != int64(len(content["boot"])) {
		t.Errorf("custom %+v", c)
	}

	// A second release raises max_version of both and keeps the migrations.
	rel2, _ := testRelease(t, "1.2.0")
	if _, err := f.open(t, t0.Add(2*time.Hour)).AddRelease(context.Background(), rel2); err != nil {
		t.Fatal(err)
	}
	rep, err = f.validate(t0.Add(3 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Manifest.Updates) != 2 || len(rep.Manifest.Migrations) != 2 {
		t.Fatalf("manifest after two releases: %+v", rep.Manifest)
	}
	for _, u := range rep.Manifest.Updates {
		if u.MaxVersion != rel2.Version {
			t.Errorf("%s max_version %s, want %s", u.Version, u.MaxVersion, rel2.Version)
		}
	}
	if rep.Versions[RoleTargets] != 3 || rep.Versions[RoleTimestamp] != 3 {
		t.Errorf("versions %v", rep.Versions)
	}
	// Old versions stay on disk for clients mid-update.
	if _, err := os.Stat(filepath.Join(f.dir, MetadataDirName, "2.targets.json")); err != nil {
		t.Error(err)
	}
}

func TestAddReleaseOptions(t *testing.T) {
	v := func(s string) version.Semver {
		x, err := version.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	tests := []struct {
		name  string
		mod   func(*Release)
		want  string // error; "" = success
		check func(*testing.T, *manifest.Manifest)
	}{
		{"no waves", func(r *Release) { r.Waves = nil }, "", func(t *testing.T, m *manifest.Manifest) {
			if len(m.Updates[0].Waves) != 0 {
				t.Errorf("waves %v", m.Updates[0].Waves)
			}
		}},
		{"explicit max version", func(r *Release) { mv := v("1.5.0"); r.MaxVersion = &mv }, "", func(t *testing.T, m *manifest.Manifest) {
			if m.Updates[0].MaxVersion != v("1.5.0") {
				t.Errorf("max_version %s", m.Updates[0].MaxVersion)
			}
		}},
		{"start at", func(r *Release) { r.StartAt = t0.Add(48 * time.Hour) }, "", func(t *testing.T, m *manifest.Manifest) {
			if got := m.Updates[0].Waves[0]; !got.Equal(t0.Add(49 * time.Hour)) {
				t.Errorf("first wave at %s", got)
			}
		}},
		{"replace migrations", func(r *Release) {
			r.ReplaceMigrations = true
			r.Transitions[manifest.Transition{From: v("1.1.0"), To: v("1.2.0")}] = []string{}
		}, "", func(t *testing.T, m *manifest.Manifest) {
			if len(m.Migrations) != 2 {
				t.Errorf("migrations %v", m.Migrations)
			}
		}},
		{"transition names the migration without .zst", func(r *Release) {
			r.Transitions = map[manifest.Transition][]string{{From: v("1.0.0"), To: v("1.1.0")}: {"migrate_v1.1.0_test"}}
		}, `its target is "migrate_v1.1.0_test.zst"`, nil},
		{"transition names an unknown migration", func(r *Release) {
			r.Transitions[manifest.Transition{From: v("1.1.0"), To: v("1.2.0")}] = []string{"nope.zst"}
		}, `"nope.zst", which is not a target`, nil},
		{"migration in no transition", func(r *Release) { r.Transitions = nil }, "is not listed by any transition", nil},
		{"max version below version", func(r *Release) { mv := v("1.0.0"); r.MaxVersion = &mv }, "max version 1.0.0 is below", nil},
		{"bad variant", func(r *Release) { r.Variant = "../x" }, `variant "../x"`, nil},
		{"missing image", func(r *Release) { r.Root = "/nonexistent/root.img" }, "root image", nil},
		{"unordered waves", func(r *Release) {
			r.Waves = []manifest.Wave{{StartAfter: 2 * time.Hour, FleetPercentage: 10}, {StartAfter: time.Hour, FleetPercentage: 100}}
		}, "waves unordered", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			rel, _ := testRelease(t, "1.1.0")
			tt.mod(&rel)
			_, err := f.open(t, t0.Add(time.Hour)).AddRelease(context.Background(), rel)
			if tt.want != "" {
				wantErr(t, err, tt.want)
				// A refused release leaves the repository as it was.
				rep, err := f.validate(t0)
				if err != nil {
					t.Fatal(err)
				}
				if rep.Versions[RoleTimestamp] != 1 || len(rep.Manifest.Updates) != 0 {
					t.Errorf("refused release changed the repository: %v", rep.Versions)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rep, err := f.validate(t0.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, rep.Manifest)
		})
	}
}

func TestValidateDetectsDamage(t *testing.T) {
	boot := "gantry-metal-dev-x86_64-1.1.0-boot.img.zst"
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string
		target string // the target the error must name, if any
	}{
		{"tampered target byte", func(t *testing.T, dir string) {
			p := storedTarget(t, dir, boot)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x01
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "sha256 mismatch", boot},
		{"missing target file", func(t *testing.T, dir string) {
			if err := os.Remove(storedTarget(t, dir, "migrate_v1.1.0_test.zst")); err != nil {
				t.Fatal(err)
			}
		}, "missing", "migrate_v1.1.0_test.zst"},
		{"truncated target", func(t *testing.T, dir string) {
			p := storedTarget(t, dir, boot)
			if err := os.Truncate(p, 10); err != nil {
				t.Fatal(err)
			}
		}, "length mismatch", boot},
		{"extended target", func(t *testing.T, dir string) {
			p := storedTarget(t, dir, ManifestTarget)
			fh, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			fh.Write([]byte("\n"))
			fh.Close()
		}, "longer than the signed", ManifestTarget},
		{"tampered targets metadata", func(t *testing.T, dir string) {
			p := filepath.Join(dir, MetadataDirName, "2.targets.json")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, bytes.Replace(b, []byte(`"version": 2`), []byte(`"version": 2 `), 1), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "2.targets.json", ""},
		{"tampered timestamp", func(t *testing.T, dir string) {
			p := filepath.Join(dir, MetadataDirName, "timestamp.json")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(`"expires": "2030-01-08T12:00:00Z"`)) {
				t.Fatalf("timestamp.json: %s", b)
			}
			b = bytes.Replace(b, []byte(`"expires": "2030-01-08T12:00:00Z"`), []byte(`"expires": "2031-01-08T12:00:00Z"`), 1)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "Verifying timestamp failed, not enough signatures", ""},
		{"missing snapshot", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, MetadataDirName, "2.snapshot.json")); err != nil {
				t.Fatal(err)
			}
		}, "404", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			rel, _ := testRelease(t, "1.1.0")
			if _, err := f.open(t, t0).AddRelease(context.Background(), rel); err != nil {
				t.Fatal(err)
			}
			if _, err := f.validate(t0); err != nil {
				t.Fatal(err)
			}
			tt.damage(t, f.dir)
			_, err := f.validate(t0)
			t.Logf("error: %v", err)
			wantErr(t, err, tt.want)
			if tt.target != "" {
				var te *TargetsError
				if !errors.As(err, &te) || len(te.Failed) != 1 || te.Failed[0].Name != tt.target {
					t.Fatalf("error %v does not name exactly target %s", err, tt.target)
				}
				wantErr(t, err, "target "+tt.target)
			}
		})
	}
}

func TestOpenChecksKeys(t *testing.T) {
	f := newFixture(t)
	stranger := genKey(t, t.TempDir(), "stranger")
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"matching keys", Options{Targets: []*Key{f.keys[RoleTargets]}}, ""},
		{"targets key of another role", Options{Targets: []*Key{f.keys[RoleSnapshot]}},
			"targets key " + f.keys[RoleSnapshot].Path + " (key ID " + f.keys[RoleSnapshot].ID[:12] + "…) does not match any targets key"},
		{"unknown timestamp key", Options{Timestamp: []*Key{stranger}}, "timestamp key " + stranger.Path + " (key ID"},
		{"negative expiry", Options{Expires: Expirations{Timestamp: -time.Hour}}, "timestamp expiry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(f.dir, tt.opts)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tt.want)
		})
	}
	// Signing without a role's key names the role.
	r, err := Open(f.dir, Options{Targets: []*Key{f.keys[RoleTargets]}, Snapshot: []*Key{f.keys[RoleSnapshot]}, Now: clock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Refresh(context.Background(), RefreshOptions{})
	wantErr(t, err, "timestamp role: no signing key given")
	if _, err := Open(filepath.Join(t.TempDir(), "none"), Options{}); err == nil {
		t.Error("Open of a missing repository succeeded")
	}
}

func TestRefresh(t *testing.T) {
	tests := []struct {
		name    string
		at      time.Time
		opts    RefreshOptions
		want    string
		bumped  []string // roles whose version goes to 2
		expires time.Duration
	}{
		{"all roles", t0.Add(24 * time.Hour), RefreshOptions{}, "", []string{RoleTargets, RoleSnapshot, RoleTimestamp}, 0},
		{"timestamp only", t0.Add(24 * time.Hour), RefreshOptions{TimestampOnly: true}, "", []string{RoleTimestamp}, 0},
		{"expired timestamp refused", t0.Add(8 * day), RefreshOptions{}, "timestamp expired at", nil, 0},
		{"expired timestamp, unsafe", t0.Add(8 * day), RefreshOptions{Unsafe: true}, "", []string{RoleTargets, RoleSnapshot, RoleTimestamp}, 0},
		{"expired snapshot, timestamp only", t0.Add(15 * day), RefreshOptions{TimestampOnly: true, Unsafe: true}, "a timestamp-only refresh cannot renew it", nil, 0},
		{"expired root", t0.Add(53 * 7 * day), RefreshOptions{Unsafe: true}, "rotate-root", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			pub, err := f.open(t, tt.at).Refresh(context.Background(), tt.opts)
			if tt.want != "" {
				wantErr(t, err, tt.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rep, err := f.validate(tt.at)
			if err != nil {
				t.Fatal(err)
			}
			wantV := map[string]int64{RoleRoot: 1, RoleTargets: 1, RoleSnapshot: 1, RoleTimestamp: 1}
			for _, role := range tt.bumped {
				wantV[role] = 2
			}
			for role, v := range wantV {
				if rep.Versions[role] != v || (role != RoleRoot && pub.Expires[role] != rep.Expires[role]) {
					t.Errorf("%s: version %d (want %d), expires %s", role, rep.Versions[role], v, rep.Expires[role])
				}
			}
			exp := DefaultExpirations()
			if got := rep.Expires[RoleTimestamp]; !got.Equal(tt.at.Add(exp.Timestamp)) {
				t.Errorf("timestamp expires %s, want %s", got, tt.at.Add(exp.Timestamp))
			}
			if len(tt.bumped) == 3 {
				if got := rep.Expires[RoleTargets]; !got.Equal(tt.at.Add(exp.Targets)) {
					t.Errorf("targets expires %s, want %s", got, tt.at.Add(exp.Targets))
				}
			}
		})
	}
}

func TestRefreshCustomExpiry(t *testing.T) {
	f := newFixture(t)
	r, err := Open(f.dir, Options{
		Targets: []*Key{f.keys[RoleTargets]}, Snapshot: []*Key{f.keys[RoleSnapshot]}, Timestamp: []*Key{f.keys[RoleTimestamp]},
		Expires: Expirations{Timestamp: 6 * time.Hour}, Now: clock(t0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Refresh(context.Background(), RefreshOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.validate(t0.Add(5 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, err = f.validate(t0.Add(7 * time.Hour))
	wantErr(t, err, "timestamp.json is expired")
}

func TestExpiredRepositoryFailsValidation(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		at   time.Time
		want string
	}{
		{t0.Add(6 * day), ""},
		{t0.Add(8 * day), "timestamp.json is expired"},
		{t0.Add(60 * 7 * day), "root.json is expired"},
	}
	for _, tt := range tests {
		_, err := f.validate(tt.at)
		if tt.want == "" {
			if err != nil {
				t.Errorf("at %s: %v", tt.at, err)
			}
			continue
		}
		wantErr(t, err, tt.want)
	}
}

func TestRotateRoot(t *testing.T) {
	f := newFixture(t)
	anchor := filepath.Join(t.TempDir(), "root.json")
	b, err := os.ReadFile(f.repo.RootPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(anchor, b, 0o644); err != nil {
		t.Fatal(err)
	}
	n1, n2 := genKey(t, f.keyDir, "new1"), genKey(t, f.keyDir, "new2")
	pub, err := f.open(t, t0).RotateRoot(context.Background(), RotateOptions{
		OldKeys: []*Key{f.keys[RoleRoot]},
		NewRoot: RoleKeys{Keys: []*Key{n1, n2}, Threshold: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	if pub.RootVersion != 2 {
		t.Errorf("root version %d", pub.RootVersion)
	}
	// The node's old root.json is the anchor; it follows the chain to 2.
	rep, err := Validate(context.Background(), ValidateOptions{Dir: f.dir, TrustedRoot: anchor, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Versions[RoleRoot] != 2 {
		t.Errorf("client ended at root version %d", rep.Versions[RoleRoot])
	}
	// root.json is now version 2, and the old root key no longer rotates.
	var root metadata.Metadata[metadata.RootType]
	if _, err := root.FromFile(f.repo.RootPath()); err != nil || root.Signed.Version != 2 {
		t.Fatalf("root.json: version %d, %v", root.Signed.Version, err)
	}
	if _, ok := root.Signed.Keys[f.keys[RoleRoot].ID]; ok {
		t.Error("the old root key is still listed")
	}
	_, err = f.open(t, t0).RotateRoot(context.Background(), RotateOptions{OldKeys: []*Key{f.keys[RoleRoot]}, NewRoot: RoleKeys{Keys: []*Key{n1}}})
	wantErr(t, err, "does not match any root key")
	// With one of the two new keys the threshold of 2 is unmet.
	_, err = f.open(t, t0).RotateRoot(context.Background(), RotateOptions{OldKeys: []*Key{n1}, NewRoot: RoleKeys{Keys: []*Key{n1}, Threshold: 1}})
	wantErr(t, err, "current root role: threshold 2 is unmet")
	// Re-signing with the same keys makes version 3; publishing goes on.
	if _, err := f.open(t, t0).RotateRoot(context.Background(), RotateOptions{OldKeys: []*Key{n1, n2}, NewRoot: RoleKeys{Keys: []*Key{n1, n2}}}); err != nil {
		t.Fatal(err)
	}
	rel, _ := testRelease(t, "1.1.0")
	if _, err := f.open(t, t0).AddRelease(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	rep, err = Validate(context.Background(), ValidateOptions{Dir: f.dir, TrustedRoot: anchor, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Versions[RoleRoot] != 3 || len(rep.Manifest.Updates) != 1 {
		t.Errorf("after a second rotation and a release: %v", rep.Versions)
	}
}

func TestRotateRootRefusals(t *testing.T) {
	f := newFixture(t)
	kd := t.TempDir()
	n1 := genKey(t, kd, "n1")
	pubN2, err := LoadKey(filepath.Join(kd, "n1.pub"))
	if err != nil {
		t.Fatal(err)
	}
	n3 := genKey(t, kd, "n3")
	tests := []struct {
		name string
		opts RotateOptions
		want string
	}{
		{"no old key", RotateOptions{NewRoot: RoleKeys{Keys: []*Key{n1}}}, "current root role: no signing key given (threshold 1)"},
		{"old key not a root key", RotateOptions{OldKeys: []*Key{n3}, NewRoot: RoleKeys{Keys: []*Key{n1}}}, "root key " + n3.Path},
		{"new threshold unmet", RotateOptions{OldKeys: []*Key{f.keys[RoleRoot]}, NewRoot: RoleKeys{Keys: []*Key{n1}, Threshold: 2}}, "new root role: threshold 2 is unmet"},
		{"new keys public only", RotateOptions{OldKeys: []*Key{f.keys[RoleRoot]}, NewRoot: RoleKeys{Keys: []*Key{pubN2}}}, "new root role: threshold 1 is unmet: only 0 distinct signing key(s) given; public keys cannot sign"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.open(t, t0).RotateRoot(context.Background(), tt.opts)
			wantErr(t, err, tt.want)
			if _, err := os.Stat(filepath.Join(f.dir, MetadataDirName, "2.root.json")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused rotation wrote 2.root.json (%v)", err)
			}
		})
	}
}

// A root signed only by the new keys (not by the current root's) must be
// refused by a client that trusts the current root.
func TestClientRefusesRootSignedOnlyByNewKeys(t *testing.T) {
	tests := []struct {
		name     string
		signOld  bool
		signNew  bool
		wantFail bool
	}{
		{"old and new keys", true, true, false},
		{"new keys only", false, true, true},
		{"old keys only", true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			st, err := f.repo.load()
			if err != nil {
				t.Fatal(err)
			}
			n := genKey(t, f.keyDir, "new")
			next := st.root
			next.Signed.Version = 2
			if err := next.Signed.RevokeKey(f.keys[RoleRoot].ID, RoleRoot); err != nil {
				t.Fatal(err)
			}
			if err := next.Signed.AddKey(n.Meta, RoleRoot); err != nil {
				t.Fatal(err)
			}
			next.ClearSignatures()
			if tt.signOld {
				if _, err := next.Sign(f.keys[RoleRoot].signer); err != nil {
					t.Fatal(err)
				}
			}
			if tt.signNew {
				if _, err := next.Sign(n.signer); err != nil {
					t.Fatal(err)
				}
			}
			b, err := next.ToBytes(true)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(f.dir, MetadataDirName), "2.root.json", b)
			_, err = f.validate(t0)
			t.Logf("error: %v", err)
			if !tt.wantFail {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, "root")
			var ue *metadata.ErrUnsignedMetadata
			if !errors.As(err, &ue) {
				t.Errorf("error %v is not go-tuf's unsigned-metadata error", err)
			}
		})
	}
}

func TestRotateOtherRoleKeys(t *testing.T) {
	f := newFixture(t)
	newTS := genKey(t, f.keyDir, "timestamp2")
	if _, err := f.open(t, t0).RotateRoot(context.Background(), RotateOptions{
		OldKeys:   []*Key{f.keys[RoleRoot]},
		NewRoot:   RoleKeys{Keys: []*Key{f.keys[RoleRoot]}},
		Timestamp: &RoleKeys{Keys: []*Key{newTS}},
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := f.validate(t0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Versions[RoleRoot] != 2 || rep.Versions[RoleTimestamp] != 2 {
		t.Errorf("versions %v", rep.Versions)
	}
	_, err = Open(f.dir, Options{Timestamp: []*Key{f.keys[RoleTimestamp]}})
	wantErr(t, err, "timestamp key "+f.keys[RoleTimestamp].Path+" (key ID")
	r, err := Open(f.dir, Options{Timestamp: []*Key{newTS}, Now: clock(t0.Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Refresh(context.Background(), RefreshOptions{TimestampOnly: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.validate(t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

// Over HTTP, as updog reads it: metadata/ and targets/ as two base URLs.
func TestValidateOverHTTP(t *testing.T) {
	f := newFixture(t)
	rel, _ := testRelease(t, "1.1.0")
	if _, err := f.open(t, t0).AddRelease(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(f.dir))
	defer srv.Close()
	opts := ValidateOptions{
		MetadataURL: srv.URL + "/metadata/", TargetsURL: srv.URL + "/targets",
		TrustedRoot: f.repo.RootPath(), At: t0, HTTPClient: srv.Client(),
	}
	rep, err := Validate(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Targets) != 5 {
		t.Errorf("targets %+v", rep.Targets)
	}
	if err := os.Remove(storedTarget(t, f.dir, rel.Migrations[0].TargetName())); err != nil {
		t.Fatal(err)
	}
	_, err = Validate(context.Background(), opts)
	wantErr(t, err, "target migrate_v1.1.0_test.zst: missing")

	for path, want := range map[string]int{
		"/metadata/timestamp.json": http.StatusOK,
		"/metadata/":               http.StatusNotFound,
		"/targets/":                http.StatusNotFound,
		"/.gantry-repo.lock":       http.StatusNotFound,
		"/metadata/../keys":        http.StatusNotFound,
	} {
		res, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, res.StatusCode, want)
		}
	}
}

func TestValidateCancelled(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Validate(ctx, ValidateOptions{Dir: f.dir, At: t0})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled validation: %v", err)
	}
}

func TestPublishersExcludeEachOther(t *testing.T) {
	f := newFixture(t)
	unlock, err := lockRepo(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := testRelease(t, "1.1.0")
	_, err = f.open(t, t0).AddRelease(context.Background(), rel)
	wantErr(t, err, "locked by another publisher")
	_, err = f.open(t, t0).Refresh(context.Background(), RefreshOptions{})
	wantErr(t, err, "locked by another publisher")
	unlock()
	if _, err := f.open(t, t0).AddRelease(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
}
