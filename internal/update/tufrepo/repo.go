package tufrepo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/pkg/durable"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/gantry-os/gantry/internal/update/manifest"
)

// The repository's layout under its directory.
const (
	MetadataDirName = "metadata"
	TargetsDirName  = "targets"
	lockName        = ".gantry-repo.lock"
	// ManifestTarget is the target holding manifest.json.
	ManifestTarget = "manifest.json"
)

// The four top-level TUF roles.
const (
	RoleRoot      = metadata.ROOT
	RoleTargets   = metadata.TARGETS
	RoleSnapshot  = metadata.SNAPSHOT
	RoleTimestamp = metadata.TIMESTAMP
)

// topRoles lists the top-level roles in the order a client loads them.
func topRoles() []string { return []string{RoleRoot, RoleTimestamp, RoleSnapshot, RoleTargets} }

// Expirations are how long each role's metadata stays valid after it is
// signed. A zero field takes the default.
type Expirations struct {
	Root, Targets, Snapshot, Timestamp time.Duration
}

// Default lifetimes, as pubsys and pubsys-setup use them.
const (
	DefaultRootExpiry      = 52 * 7 * 24 * time.Hour
	DefaultTargetsExpiry   = 2 * 7 * 24 * time.Hour
	DefaultSnapshotExpiry  = 2 * 7 * 24 * time.Hour
	DefaultTimestampExpiry = 7 * 24 * time.Hour
)

// DefaultExpirations returns pubsys's lifetimes: root 52 weeks, targets and
// snapshot 2 weeks, timestamp 1 week.
func DefaultExpirations() Expirations {
	return Expirations{DefaultRootExpiry, DefaultTargetsExpiry, DefaultSnapshotExpiry, DefaultTimestampExpiry}
}

func (e Expirations) withDefaults() Expirations {
	d := DefaultExpirations()
	for _, p := range []struct{ v, def *time.Duration }{
		{&e.Root, &d.Root}, {&e.Targets, &d.Targets}, {&e.Snapshot, &d.Snapshot}, {&e.Timestamp, &d.Timestamp},
	} {
		if *p.v == 0 {
			*p.v = *p.def
		}
	}
	return e
}

func (e Expirations) validate() error {
	for role, d := range map[string]time.Duration{RoleRoot: e.Root, RoleTargets: e.Targets, RoleSnapshot: e.Snapshot, RoleTimestamp: e.Timestamp} {
		if d < 0 {
			return fmt.Errorf("%s expiry %s is negative", role, d)
		}
	}
	return nil
}

// RoleKeys are the keys of one role and how many of them must sign.
type RoleKeys struct {
	Keys []*Key
	// Threshold is the number of signatures the role needs (0 means 1).
	Threshold int
}

// CreateOptions describe a new repository.
type CreateOptions struct {
	Root, Targets, Snapshot, Timestamp RoleKeys
	Expires                            Expirations
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Options are what an opened repository signs with.
type Options struct {
	// The private keys to sign each role with (at least its threshold).
	Targets, Snapshot, Timestamp []*Key
	// Expires sets the lifetime of what is re-signed; zero fields take the defaults.
	Expires Expirations
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Repo is a repository on disk, opened to publish to. Every change takes
// the repository's lock, reads the metadata from disk again, verifies it,
// and writes targets before the metadata that points at them.
type Repo struct {
	dir  string
	opts Options
}

// Dir is the repository's directory.
func (r *Repo) Dir() string { return r.dir }

// MetadataDir is the directory to serve as the metadata base URL.
func (r *Repo) MetadataDir() string { return filepath.Join(r.dir, MetadataDirName) }

// TargetsDir is the directory to serve as the targets base URL.
func (r *Repo) TargetsDir() string { return filepath.Join(r.dir, TargetsDirName) }

// RootPath is the newest root.json: the trust anchor to ship in images.
func (r *Repo) RootPath() string { return filepath.Join(r.MetadataDir(), "root.json") }

func (r *Repo) now() time.Time {
	if r.opts.Now != nil {
		return r.opts.Now().UTC()
	}
	return time.Now().UTC()
}

// expiry is when metadata signed now for d stays valid until, to the second.
func expiry(now time.Time, d time.Duration) time.Time { return now.Add(d).UTC().Truncate(time.Second) }

// state is the repository's current signed metadata.
type state struct {
	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
}

func (s *state) expires() map[string]time.Time {
	return map[string]time.Time{
		RoleRoot: s.root.Signed.Expires, RoleTargets: s.targets.Signed.Expires,
		RoleSnapshot: s.snapshot.Signed.Expires, RoleTimestamp: s.timestamp.Signed.Expires,
	}
}

// Create makes a new repository in dir (which must not hold one): root.json
// version 1 with the roles' keys and thresholds, and targets, snapshot and
// timestamp version 1 offering an empty manifest.json. Every role needs at
// least its threshold of keys, and of private keys to sign with.
func Create(ctx context.Context, dir string, opts CreateOptions) (*Repo, error) {
	r := &Repo{dir: dir, opts: Options{
		Targets: opts.Targets.Keys, Snapshot: opts.Snapshot.Keys, Timestamp: opts.Timestamp.Keys,
		Expires: opts.Expires.withDefaults(), Now: opts.Now,
	}}
	if err := r.opts.Expires.validate(); err != nil {
		return nil, err
	}
	now := r.now()
	root := metadata.Root(expiry(now, r.opts.Expires.Root))
	for _, rk := range []struct {
		role string
		rk   RoleKeys
	}{{RoleRoot, opts.Root}, {RoleTargets, opts.Targets}, {RoleSnapshot, opts.Snapshot}, {RoleTimestamp, opts.Timestamp}} {
		th, err := checkRoleKeys(rk.role, rk.rk)
		if err != nil {
			return nil, err
		}
		for _, k := range rk.rk.Keys {
			if err := root.Signed.AddKey(k.Meta, rk.role); err != nil {
				return nil, fmt.Errorf("%s key %s: %w", rk.role, k.Path, err)
			}
		}
		root.Signed.Roles[rk.role].Threshold = th
		if _, err := signingKeys(rk.role, rk.rk.Keys, th); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create repository: %w", err)
	}
	unlock, err := lockRepo(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if ents, err := os.ReadDir(r.MetadataDir()); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("%s already holds a repository; not overwriting it", dir)
	}
	for _, d := range []string{r.MetadataDir(), r.TargetsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create repository: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := signRole(root, RoleRoot, root, opts.Root.Keys); err != nil {
		return nil, err
	}
	st := &state{root: root, targets: metadata.Targets(), snapshot: metadata.Snapshot(), timestamp: metadata.Timestamp()}
	// publish bumps every version: start them at 0 so the first is 1.
	st.targets.Signed.Version, st.snapshot.Signed.Version, st.timestamp.Signed.Version = 0, 0, 0
	empty, err := (&manifest.Manifest{}).MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	tf, err := r.storeBytes(ctx, ManifestTarget, empty)
	if err != nil {
		return nil, err
	}
	st.targets.Signed.Targets[ManifestTarget] = tf
	if err := durable.SyncDir(r.TargetsDir()); err != nil {
		return nil, err
	}
	if err := r.writeRoot(root); err != nil {
		return nil, err
	}
	if _, err := r.publish(ctx, st, publishAll, r.signers(), nil); err != nil {
		return nil, err
	}
	return r, nil
}

// checkRoleKeys returns the role's threshold after checking it can be met.
func checkRoleKeys(role string, rk RoleKeys) (int, error) {
	th := rk.Threshold
	if th == 0 {
		th = 1
	}
	if th < 0 {
		return 0, fmt.Errorf("%s threshold %d is not positive", role, th)
	}
	ids := map[string]bool{}
	for _, k := range rk.Keys {
		ids[k.ID] = true
	}
	if len(rk.Keys) == 0 {
		return 0, fmt.Errorf("%s role: no key given", role)
	}
	if len(ids) < th {
		return 0, fmt.Errorf("%s role: threshold %d is unmet: only %d distinct key(s) given (%s)", role, th, len(ids), keyPaths(rk.Keys))
	}
	return th, nil
}

func keyPaths(keys []*Key) string {
	ps := make([]string, len(keys))
	for i, k := range keys {
		ps[i] = k.Path
	}
	return strings.Join(ps, ", ")
}

// Open opens the repository in dir to publish to. It checks that every key
// in opts belongs to the role it is given for in the newest root.json.
func Open(dir string, opts Options) (*Repo, error) {
	r := &Repo{dir: dir, opts: opts}
	r.opts.Expires = opts.Expires.withDefaults()
	if err := r.opts.Expires.validate(); err != nil {
		return nil, err
	}
	root, err := r.loadRoot()
	if err != nil {
		return nil, err
	}
	for role, keys := range r.signers() {
		if err := checkKeysInRole(root, role, keys); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *Repo) signers() map[string][]*Key {
	return map[string][]*Key{RoleTargets: r.opts.Targets, RoleSnapshot: r.opts.Snapshot, RoleTimestamp: r.opts.Timestamp}
}

// checkKeysInRole refuses a key that is not one of the role's keys.
func checkKeysInRole(root *metadata.Metadata[metadata.RootType], role string, keys []*Key) error {
	def := root.Signed.Roles[role]
	if def == nil {
		return fmt.Errorf("root.json has no %s role", role)
	}
	for _, k := range keys {
		if !slices.Contains(def.KeyIDs, k.ID) {
			return fmt.Errorf("%s key %s does not match any %s key of the repository (key IDs %s)",
				role, k, role, shortIDs(def.KeyIDs))
		}
	}
	return nil
}

func shortIDs(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = fmt.Sprintf("%.12s…", id)
	}
	return strings.Join(out, ", ")
}

var rootFileRe = regexp.MustCompile(`^([1-9][0-9]*)\.root\.json$`)

// rootVersions lists the versions of N.root.json in dir, ascending.
func rootVersions(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read repository metadata: %w", err)
	}
	var vs []int64
	for _, e := range ents {
		if m := rootFileRe.FindStringSubmatch(e.Name()); m != nil {
			v, err := strconv.ParseInt(m[1], 10, 64)
			if err == nil {
				vs = append(vs, v)
			}
		}
	}
	slices.Sort(vs)
	return vs, nil
}

// loadRoot reads the newest N.root.json and checks it is signed by its own
// root keys.
func (r *Repo) loadRoot() (*metadata.Metadata[metadata.RootType], error) {
	vs, err := rootVersions(r.MetadataDir())
	if err != nil {
		return nil, fmt.Errorf("%s is not a repository: %w", r.dir, err)
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("%s is not a repository: no N.root.json in %s", r.dir, r.MetadataDir())
	}
	p := filepath.Join(r.MetadataDir(), fmt.Sprintf("%d.root.json", vs[len(vs)-1]))
	var root metadata.Metadata[metadata.RootType]
	if _, err := root.FromFile(p); err != nil {
		return nil, fmt.Errorf("load %s: %w", p, err)
	}
	if root.Signed.Version != vs[len(vs)-1] {
		return nil, fmt.Errorf("%s holds root version %d", p, root.Signed.Version)
	}
	if err := root.VerifyDelegate(RoleRoot, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &root, nil
}

// load reads the current metadata from disk and verifies its signatures
// and versions, so that nothing tampered with is ever re-signed.
func (r *Repo) load() (*state, error) {
	root, err := r.loadRoot()
	if err != nil {
		return nil, err
	}
	md := r.MetadataDir()
	st := &state{root: root}
	st.timestamp = &metadata.Metadata[metadata.TimestampType]{}
	if err := loadRole(root, RoleTimestamp, filepath.Join(md, "timestamp.json"), st.timestamp); err != nil {
		return nil, err
	}
	sm := st.timestamp.Signed.Meta["snapshot.json"]
	if sm == nil {
		return nil, fmt.Errorf("timestamp.json lists no snapshot.json")
	}
	st.snapshot = &metadata.Metadata[metadata.SnapshotType]{}
	if err := loadRole(root, RoleSnapshot, filepath.Join(md, fmt.Sprintf("%d.snapshot.json", sm.Version)), st.snapshot); err != nil {
		return nil, err
	}
	if st.snapshot.Signed.Version != sm.Version {
		return nil, fmt.Errorf("%d.snapshot.json holds version %d", sm.Version, st.snapshot.Signed.Version)
	}
	tm := st.snapshot.Signed.Meta["targets.json"]
	if tm == nil {
		return nil, fmt.Errorf("%d.snapshot.json lists no targets.json", sm.Version)
	}
	st.targets = &metadata.Metadata[metadata.TargetsType]{}
	if err := loadRole(root, RoleTargets, filepath.Join(md, fmt.Sprintf("%d.targets.json", tm.Version)), st.targets); err != nil {
		return nil, err
	}
	if st.targets.Signed.Version != tm.Version {
		return nil, fmt.Errorf("%d.targets.json holds version %d", tm.Version, st.targets.Signed.Version)
	}
	return st, nil
}

// loadRole reads one role's metadata file and verifies it against root.
func loadRole[T metadata.Roles](root *metadata.Metadata[metadata.RootType], role, path string, md *metadata.Metadata[T]) error {
	if _, err := md.FromFile(path); err != nil {
		return fmt.Errorf("load %s metadata %s: %w", role, path, err)
	}
	if err := root.VerifyDelegate(role, md); err != nil {
		return fmt.Errorf("%s metadata %s: %w", role, path, err)
	}
	return nil
}

// signRole replaces md's signatures with those of keys, which must be
// private keys of role in root, at least its threshold of them; then it
// verifies the result as a client would.
func signRole[T metadata.Roles](root *metadata.Metadata[metadata.RootType], role string, md *metadata.Metadata[T], keys []*Key) error {
	def := root.Signed.Roles[role]
	if def == nil {
		return fmt.Errorf("root.json has no %s role", role)
	}
	if err := checkKeysInRole(root, role, keys); err != nil {
		return err
	}
	signers, err := signingKeys(role, keys, def.Threshold)
	if err != nil {
		return err
	}
	md.ClearSignatures()
	for _, k := range signers {
		if _, err := md.Sign(k.signer); err != nil {
			return fmt.Errorf("sign %s with %s: %w", role, k.Path, err)
		}
	}
	if err := root.VerifyDelegate(role, md); err != nil {
		return fmt.Errorf("verify freshly signed %s: %w", role, err)
	}
	return nil
}

// signingKeys returns the distinct private keys among keys, which must be
// at least threshold; the error names the role and the files.
func signingKeys(role string, keys []*Key, threshold int) ([]*Key, error) {
	var signers, public []*Key
	seen := map[string]bool{}
	for _, k := range keys {
		switch {
		case !k.CanSign():
			public = append(public, k)
		case !seen[k.ID]:
			seen[k.ID] = true
			signers = append(signers, k)
		}
	}
	if len(signers) >= threshold {
		return signers, nil
	}
	msg := fmt.Sprintf("%s role: threshold %d is unmet: only %d distinct signing key(s) given", role, threshold, len(signers))
	if len(signers) == 0 && len(public) == 0 {
		msg = fmt.Sprintf("%s role: no signing key given (threshold %d)", role, threshold)
	} else if len(signers) > 0 {
		msg += " (" + keyPaths(signers) + ")"
	}
	if len(public) > 0 {
		msg += "; public keys cannot sign: " + keyPaths(public)
	}
	return nil, errors.New(msg)
}

// What publish re-signs.
type publishSet int

const (
	publishAll           publishSet = iota // targets, snapshot and timestamp
	publishTimestampOnly                   // timestamp only
)

// Published reports the metadata a change wrote.
type Published struct {
	RootVersion, TargetsVersion, SnapshotVersion, TimestampVersion int64
	// Expires is when each role's metadata expires.
	Expires map[string]time.Time
	// Targets are the targets the change added or replaced.
	Targets []string
}

// publish bumps versions, signs and writes targets, snapshot and timestamp
// (or only the timestamp), in that order; each file is written atomically.
// beforeTimestamp, when not nil, runs just before timestamp.json is
// replaced: timestamp.json is what makes a new state visible to clients.
func (r *Repo) publish(ctx context.Context, st *state, set publishSet, keys map[string][]*Key, beforeTimestamp func() error) (*Published, error) {
	now := r.now()
	md := r.MetadataDir()
	exp := r.opts.Expires
	if set == publishAll {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t := &st.targets.Signed
		t.Version++
		t.Expires = expiry(now, exp.Targets)
		if err := signRole(st.root, RoleTargets, st.targets, keys[RoleTargets]); err != nil {
			return nil, err
		}
		tb, err := st.targets.ToBytes(true)
		if err != nil {
			return nil, fmt.Errorf("encode targets: %w", err)
		}
		if err := writeAtomic(md, fmt.Sprintf("%d.targets.json", t.Version), tb); err != nil {
			return nil, err
		}
		s := &st.snapshot.Signed
		s.Version++
		s.Expires = expiry(now, exp.Snapshot)
		s.Meta = map[string]*metadata.MetaFiles{"targets.json": metaFile(t.Version, tb)}
		if err := signRole(st.root, RoleSnapshot, st.snapshot, keys[RoleSnapshot]); err != nil {
			return nil, err
		}
		sb, err := st.snapshot.ToBytes(true)
		if err != nil {
			return nil, fmt.Errorf("encode snapshot: %w", err)
		}
		if err := writeAtomic(md, fmt.Sprintf("%d.snapshot.json", s.Version), sb); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sb, err := os.ReadFile(filepath.Join(md, fmt.Sprintf("%d.snapshot.json", st.snapshot.Signed.Version)))
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	ts := &st.timestamp.Signed
	ts.Version++
	ts.Expires = expiry(now, exp.Timestamp)
	ts.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metaFile(st.snapshot.Signed.Version, sb)}
	if err := signRole(st.root, RoleTimestamp, st.timestamp, keys[RoleTimestamp]); err != nil {
		return nil, err
	}
	tsb, err := st.timestamp.ToBytes(true)
	if err != nil {
		return nil, fmt.Errorf("encode timestamp: %w", err)
	}
	if beforeTimestamp != nil {
		if err := beforeTimestamp(); err != nil {
			return nil, err
		}
	}
	if err := writeAtomic(md, "timestamp.json", tsb); err != nil {
		return nil, err
	}
	return &Published{
		RootVersion: st.root.Signed.Version, TargetsVersion: st.targets.Signed.Version,
		SnapshotVersion: st.snapshot.Signed.Version, TimestampVersion: ts.Version, Expires: st.expires(),
	}, nil
}

func metaFile(version int64, b []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(b)
	return &metadata.MetaFiles{Version: version, Length: int64(len(b)), Hashes: metadata.Hashes{"sha256": sum[:]}}
}

// writeRoot writes N.root.json and replaces root.json with it.
func (r *Repo) writeRoot(root *metadata.Metadata[metadata.RootType]) error {
	b, err := root.ToBytes(true)
	if err != nil {
		return fmt.Errorf("encode root: %w", err)
	}
	name := fmt.Sprintf("%d.root.json", root.Signed.Version)
	if _, err := os.Lstat(filepath.Join(r.MetadataDir(), name)); err == nil {
		return fmt.Errorf("%s already exists; not overwriting it", name)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := writeAtomic(r.MetadataDir(), name, b); err != nil {
		return err
	}
	return writeAtomic(r.MetadataDir(), "root.json", b)
}

// writeAtomic writes dir/name whole or not at all (durable.WriteFile).
func writeAtomic(dir, name string, b []byte) error {
	return durable.WriteFile(filepath.Join(dir, name), b, 0o644)
}

// checkNotExpired refuses a repository any of whose roles has expired.
func checkNotExpired(st *state, now time.Time) error {
	exp := st.expires()
	var expired []string
	for _, role := range topRoles() {
		if !now.Before(exp[role]) {
			expired = append(expired, fmt.Sprintf("%s expired at %s", role, exp[role].Format(time.RFC3339)))
		}
	}
	if len(expired) > 0 {
		return fmt.Errorf("repository has expired: %s", strings.Join(expired, ", "))
	}
	return nil
}
