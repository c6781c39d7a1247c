package tufrepo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/gantry-os/gantry/pkg/durable"
	"github.com/gantry-os/gantry/pkg/version"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/gantry-os/gantry/internal/update/manifest"
)

// maxEncoders bounds the zstd encoder's goroutines, and so its memory:
// each holds a window and its blocks, whatever the image's size.
const maxEncoders = 4

// CompressedSuffix ends the name of every compressed target.
const CompressedSuffix = ".zst"

// Migration is one migration binary to publish.
type Migration struct {
	// Name is the migration's name, e.g. migrate_v1.1.0_rename-foo; its
	// target is Name+".zst" (unless Name already ends so).
	Name string
	// Path is the (uncompressed) binary.
	Path string
}

// TargetName is the name of the migration's target, which the manifest's
// migrations lists use.
func (m Migration) TargetName() string {
	if strings.HasSuffix(m.Name, CompressedSuffix) {
		return m.Name
	}
	return m.Name + CompressedSuffix
}

// Release is one OS release to add to the repository.
type Release struct {
	Variant, Arch string
	Version       version.Semver
	// MaxVersion, when set, becomes the max_version of every release of
	// the variant and arch; else it is the higher of Version and the
	// current one.
	MaxVersion *version.Semver
	// Boot, Root and Hash are the (uncompressed) partition images.
	Boot, Root, Hash string
	// Migrations are published as zstd-compressed targets.
	Migrations []Migration
	// Transitions are written into the manifest's migrations map: over the
	// existing map, or in its place when ReplaceMigrations is set (as
	// pubsys copies Release.toml's whole table). Each name must be a
	// target once the release is added (a Migration's TargetName).
	Transitions       map[manifest.Transition][]string
	ReplaceMigrations bool
	// Waves is the wave policy (nil or empty: no waves, every node may
	// update at once), starting at StartAt (zero: now).
	Waves   []manifest.Wave
	StartAt time.Time
}

// ImageTargetName is the name of a release image's target:
// gantry-<variant>-<arch>-<version>-<part>.img.zst.
func ImageTargetName(variant, arch string, version version.Semver, part string) string {
	return fmt.Sprintf("gantry-%s-%s-%s-%s.img%s", variant, arch, version, part, CompressedSuffix)
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

func checkTargetName(kind, n string) error {
	if !nameRe.MatchString(n) {
		return fmt.Errorf("%s %q must be letters, digits, '.', '_', '+' and '-', not starting with a punctuation mark", kind, n)
	}
	return nil
}

func (rel *Release) check() error {
	if err := checkTargetName("variant", rel.Variant); err != nil {
		return err
	}
	if err := checkTargetName("arch", rel.Arch); err != nil {
		return err
	}
	if rel.MaxVersion != nil && rel.MaxVersion.Compare(rel.Version) < 0 {
		return fmt.Errorf("max version %s is below the release's version %s", rel.MaxVersion, rel.Version)
	}
	for _, f := range []struct{ part, path string }{{"boot", rel.Boot}, {"root", rel.Root}, {"hash", rel.Hash}} {
		if f.path == "" {
			return fmt.Errorf("no %s image given", f.part)
		}
		if err := checkRegular(f.part+" image", f.path); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, m := range rel.Migrations {
		if err := checkTargetName("migration name", m.Name); err != nil {
			return err
		}
		if seen[m.TargetName()] {
			return fmt.Errorf("migration %s is given twice", m.Name)
		}
		seen[m.TargetName()] = true
		if err := checkRegular("migration "+m.Name, m.Path); err != nil {
			return err
		}
	}
	return nil
}

func checkRegular(what, p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: %s is not a regular file", what, p)
	}
	return nil
}

// AddRelease publishes a release: it compresses its images and migrations
// into targets, adds the release to manifest.json (max_version, waves,
// migrations), and re-signs targets, snapshot and timestamp with bumped
// versions. Every target file is on disk, synced, before the metadata that
// names it.
func (r *Repo) AddRelease(ctx context.Context, rel Release) (*Published, error) {
	if err := rel.check(); err != nil {
		return nil, fmt.Errorf("add release: %w", err)
	}
	unlock, err := lockRepo(r.dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := r.load()
	if err != nil {
		return nil, err
	}
	mf, err := r.readManifest(st)
	if err != nil {
		return nil, err
	}
	var waves map[uint32]time.Time
	if len(rel.Waves) > 0 {
		start := rel.StartAt
		if start.IsZero() {
			start = r.now()
		}
		if waves, err = manifest.SetWaves(rel.Waves, start.Truncate(time.Second)); err != nil {
			return nil, fmt.Errorf("add release: %w", err)
		}
	} else {
		waves = map[uint32]time.Time{}
	}

	var added []string
	store := func(name, path string) (string, error) {
		tf, err := r.storeCompressed(ctx, name, path)
		if err != nil {
			return "", err
		}
		st.targets.Signed.Targets[name] = tf
		added = append(added, name)
		return name, nil
	}
	u := manifest.Update{Variant: rel.Variant, Arch: rel.Arch, Version: rel.Version, Waves: waves}
	for _, img := range []struct {
		part, path string
		dst        *string
	}{{"boot", rel.Boot, &u.Images.Boot}, {"root", rel.Root, &u.Images.Root}, {"hash", rel.Hash, &u.Images.Hash}} {
		if *img.dst, err = store(ImageTargetName(rel.Variant, rel.Arch, rel.Version, img.part), img.path); err != nil {
			return nil, err
		}
	}
	for _, m := range rel.Migrations {
		if _, err := store(m.TargetName(), m.Path); err != nil {
			return nil, err
		}
	}

	mf.AddUpdate(u, rel.MaxVersion)
	if rel.ReplaceMigrations {
		mf.Migrations = map[manifest.Transition][]string{}
	}
	for t, names := range rel.Transitions {
		mf.Migrations[t] = append([]string{}, names...)
	}
	if err := checkMigrationTargets(mf, st.targets.Signed.Targets, rel.Migrations); err != nil {
		return nil, fmt.Errorf("add release: %w", err)
	}
	mb, err := mf.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	if _, err := manifest.Parse(mb); err != nil {
		return nil, fmt.Errorf("add release: the new manifest is invalid: %w", err)
	}
	tf, err := r.storeBytes(ctx, ManifestTarget, mb)
	if err != nil {
		return nil, err
	}
	st.targets.Signed.Targets[ManifestTarget] = tf
	added = append(added, ManifestTarget)
	if err := durable.SyncDir(r.TargetsDir()); err != nil {
		return nil, err
	}
	pub, err := r.publish(ctx, st, publishAll, r.signers(), nil)
	if err != nil {
		return nil, err
	}
	pub.Targets = added
	return pub, nil
}

// checkMigrationTargets requires every migration the manifest names to be
// a target, and every migration just added to be named by a transition.
func checkMigrationTargets(mf *manifest.Manifest, targets map[string]*metadata.TargetFiles, added []Migration) error {
	named := map[string]bool{}
	ts := make([]manifest.Transition, 0, len(mf.Migrations))
	for t := range mf.Migrations {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].String() < ts[j].String() })
	for _, t := range ts {
		for _, n := range mf.Migrations[t] {
			named[n] = true
			if targets[n] != nil {
				continue
			}
			if targets[n+CompressedSuffix] != nil {
				return fmt.Errorf("transition %s names migration %q, which is not a target; its target is %q", t, n, n+CompressedSuffix)
			}
			return fmt.Errorf("transition %s names migration %q, which is not a target of the repository", t, n)
		}
	}
	for _, m := range added {
		if !named[m.TargetName()] {
			return fmt.Errorf("migration %s (target %s) is not listed by any transition of the manifest", m.Name, m.TargetName())
		}
	}
	return nil
}

// readManifest reads the manifest.json target from the targets directory,
// checking it against the targets metadata.
func (r *Repo) readManifest(st *state) (*manifest.Manifest, error) {
	tf := st.targets.Signed.Targets[ManifestTarget]
	if tf == nil {
		return &manifest.Manifest{Migrations: map[manifest.Transition][]string{}}, nil
	}
	p, err := r.targetPath(ManifestTarget, tf)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read the current manifest: %w", err)
	}
	if err := tf.VerifyLengthHashes(b); err != nil {
		return nil, fmt.Errorf("the current manifest %s does not match the targets metadata: %w", p, err)
	}
	mf, err := manifest.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("the current manifest %s: %w", p, err)
	}
	return mf, nil
}

// targetPath is where a target is stored: targets/<sha256>.<name>.
func (r *Repo) targetPath(name string, tf *metadata.TargetFiles) (string, error) {
	h, ok := tf.Hashes["sha256"]
	if !ok {
		return "", fmt.Errorf("target %s has no sha256 hash", name)
	}
	return filepath.Join(r.TargetsDir(), StoredTargetName(name, h)), nil
}

// StoredTargetName is a target's file name under the targets base URL:
// <sha256-hex>.<name>, as clients of a consistent-snapshot repository
// fetch it.
func StoredTargetName(name string, sha256sum []byte) string {
	return hex.EncodeToString(sha256sum) + "." + name
}

// storeBytes stores a small target as is.
func (r *Repo) storeBytes(ctx context.Context, name string, b []byte) (*metadata.TargetFiles, error) {
	return r.storeStream(ctx, name, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}, nil)
}

// storeCompressed stores the zstd compression of the file at src as
// target name, streaming: memory use does not grow with the file. The
// target's custom metadata records the uncompressed length and sha256.
func (r *Repo) storeCompressed(ctx context.Context, name, src string) (*metadata.TargetFiles, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", name, err)
	}
	defer in.Close()
	raw := sha256.New()
	var rawLen int64
	fill := func(w io.Writer) error {
		enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(min(runtime.GOMAXPROCS(0), maxEncoders)))
		if err != nil {
			return err
		}
		n, err := io.Copy(enc, io.TeeReader(ctxReader{ctx, in}, raw))
		if err != nil {
			enc.Close()
			return fmt.Errorf("compress %s: %w", src, err)
		}
		rawLen = n
		return enc.Close()
	}
	custom := func() (*json.RawMessage, error) {
		b, err := json.Marshal(TargetCustom{DecompressedLength: rawLen, DecompressedSHA256: hex.EncodeToString(raw.Sum(nil))})
		m := json.RawMessage(b)
		return &m, err
	}
	return r.storeStream(ctx, name, fill, custom)
}

// TargetCustom is the custom metadata of a compressed target: what it
// decompresses to, so a client can check what it wrote.
type TargetCustom struct {
	DecompressedLength int64  `json:"decompressed_length"`
	DecompressedSHA256 string `json:"decompressed_sha256"`
}

// storeStream writes a target through a temporary file in the targets
// directory, hashing it on the way, and renames it to <sha256>.<name>.
func (r *Repo) storeStream(ctx context.Context, name string, fill func(io.Writer) error, custom func() (*json.RawMessage, error)) (*metadata.TargetFiles, error) {
	if err := checkTargetName("target name", name); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(r.TargetsDir(), ".tmp-"+name+"-*")
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", name, err)
	}
	tmp := f.Name()
	fail := func(err error) (*metadata.TargetFiles, error) {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("target %s: %w", name, err)
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	if err := fill(cw); err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	sum := h.Sum(nil)
	dst := filepath.Join(r.TargetsDir(), StoredTargetName(name, sum))
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("target %s: %w", name, err)
	}
	tf := &metadata.TargetFiles{Length: cw.n, Hashes: metadata.Hashes{"sha256": sum}, Path: name}
	if custom != nil {
		if tf.Custom, err = custom(); err != nil {
			return nil, fmt.Errorf("target %s: %w", name, err)
		}
	}
	return tf, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ctxReader stops a copy once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// hashers returns a hash for each algorithm in hs that this package knows.
func hashers(hs metadata.Hashes) (map[string]hash.Hash, error) {
	out := map[string]hash.Hash{}
	for alg := range hs {
		switch alg {
		case "sha256":
			out[alg] = sha256.New()
		default:
			return nil, fmt.Errorf("unsupported hash algorithm %q", alg)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no hashes")
	}
	return out, nil
}

// verifyStream reads r to its end (at most length+1 bytes) and checks its
// length and hashes against tf.
func verifyStream(ctx context.Context, r io.Reader, tf *metadata.TargetFiles) error {
	hs, err := hashers(tf.Hashes)
	if err != nil {
		return err
	}
	ws := make([]io.Writer, 0, len(hs))
	for _, h := range hs {
		ws = append(ws, h)
	}
	n, err := io.Copy(io.MultiWriter(ws...), io.LimitReader(ctxReader{ctx, r}, tf.Length+1))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if n != tf.Length {
		if n > tf.Length {
			return fmt.Errorf("length mismatch: longer than the signed %d bytes", tf.Length)
		}
		return fmt.Errorf("length mismatch: %d bytes, signed %d", n, tf.Length)
	}
	algs := make([]string, 0, len(hs))
	for a := range hs {
		algs = append(algs, a)
	}
	slices.Sort(algs)
	for _, a := range algs {
		if got := hs[a].Sum(nil); !bytes.Equal(got, tf.Hashes[a]) {
			return fmt.Errorf("%s mismatch: %x, signed %x", a, got, []byte(tf.Hashes[a]))
		}
	}
	return nil
}
