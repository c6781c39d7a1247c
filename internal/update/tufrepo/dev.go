package tufrepo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// A development repository is one that a single key signs, every role,
// kept with the repository: what `gantry repo init --dev` makes and what
// `gantry run` serves to its node. It is for development nodes only; see
// repository.md for the keys a production repository needs.
const (
	// DevKeysDirName is the folder of a development repository that holds
	// its key. Handler serves only metadata/ and targets/, never this.
	DevKeysDirName = "keys"
	// DevKeyName is the key's file name in DevKeysDirName (and .pub).
	DevKeyName = "dev"
	// DevRefreshMargin is how close to expiring a development repository's
	// metadata may be before EnsureDev re-signs it.
	DevRefreshMargin = 24 * time.Hour
)

// DevKeyPath is the private key of the development repository in dir.
func DevKeyPath(dir string) string { return filepath.Join(dir, DevKeysDirName, DevKeyName) }

// Dev is a development repository opened to publish to with its key.
type Dev struct {
	*Repo
	// Created is set when EnsureDev made the repository (so no image built
	// before trusts it yet); KeyCreated when it made the key.
	Created, KeyCreated bool
	// Refreshed is set when EnsureDev re-signed metadata that was about to
	// expire (or had expired).
	Refreshed bool
}

// KeyPath is the repository's private key, which signs every role.
func (d *Dev) KeyPath() string { return DevKeyPath(d.Dir()) }

// EnsureDev opens the development repository in dir, making what is
// missing first, each at most once: the key (DIR/keys/dev, mode 0600),
// then the repository with that key for every role. A repository that is
// kept across uses is re-signed when its targets, snapshot or timestamp
// would expire within DevRefreshMargin, so that a node can always read it.
// now is the clock (nil: time.Now).
func EnsureDev(ctx context.Context, dir string, now func() time.Time) (*Dev, error) {
	d := &Dev{}
	keyPath := DevKeyPath(dir)
	_, err := os.Stat(keyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if hasRepository(dir) {
			return nil, fmt.Errorf("development repository %s: it holds a repository but not its key %s", dir, keyPath)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("development repository %s: %w", dir, err)
		}
		if err := os.Mkdir(filepath.Dir(keyPath), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("development repository %s: %w", dir, err)
		}
		if _, err := GenerateKey(keyPath); err != nil {
			return nil, fmt.Errorf("development repository %s: %w", dir, err)
		}
		d.KeyCreated = true
	case err != nil:
		return nil, fmt.Errorf("development repository %s: key: %w", dir, err)
	}
	key, err := LoadKey(keyPath)
	if err != nil {
		return nil, fmt.Errorf("development repository %s: %w", dir, err)
	}
	if !key.CanSign() {
		return nil, fmt.Errorf("development repository %s: %s is not a private key", dir, keyPath)
	}
	one := []*Key{key}
	if !hasRepository(dir) {
		rk := RoleKeys{Keys: one}
		r, err := Create(ctx, dir, CreateOptions{Root: rk, Targets: rk, Snapshot: rk, Timestamp: rk, Now: now})
		if err != nil {
			return nil, fmt.Errorf("development repository %s: %w", dir, err)
		}
		d.Repo, d.Created = r, true
		return d, nil
	}
	r, err := Open(dir, Options{Targets: one, Snapshot: one, Timestamp: one, Now: now})
	if err != nil {
		return nil, fmt.Errorf("development repository %s: %w", dir, err)
	}
	d.Repo = r
	exp, err := r.Expires()
	if err != nil {
		return nil, fmt.Errorf("development repository %s: %w", dir, err)
	}
	soon := r.now().Add(DevRefreshMargin)
	for _, role := range []string{RoleTargets, RoleSnapshot, RoleTimestamp} {
		if exp[role].Before(soon) {
			if _, err := r.Refresh(ctx, RefreshOptions{Unsafe: true}); err != nil {
				return nil, fmt.Errorf("development repository %s: %w", dir, err)
			}
			d.Refreshed = true
			break
		}
	}
	return d, nil
}

// hasRepository reports whether dir holds a repository's root.json.
func hasRepository(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, MetadataDirName, "root.json"))
	return err == nil
}

// Expires returns when each role's current metadata expires.
func (r *Repo) Expires() (map[string]time.Time, error) {
	st, err := r.load()
	if err != nil {
		return nil, err
	}
	return st.expires(), nil
}

// HasRelease reports whether the repository offers rel as it is: the
// manifest lists rel's variant, arch and version, and that release's boot,
// root and hash targets decompress to the content of rel's files (same
// length and sha256) and are stored in the targets folder. Migrations and
// transitions are not compared.
func (r *Repo) HasRelease(ctx context.Context, rel Release) (bool, error) {
	if err := rel.check(); err != nil {
		return false, fmt.Errorf("has release: %w", err)
	}
	st, err := r.load()
	if err != nil {
		return false, err
	}
	mf, err := r.readManifest(st)
	if err != nil {
		return false, err
	}
	found := false
	for _, u := range mf.Updates {
		if u.Variant != rel.Variant || u.Arch != rel.Arch || u.Version.Compare(rel.Version) != 0 {
			continue
		}
		found = true
		for _, img := range []struct{ target, path string }{{u.Images.Boot, rel.Boot}, {u.Images.Root, rel.Root}, {u.Images.Hash, rel.Hash}} {
			tf := st.targets.Signed.Targets[img.target]
			if tf == nil || tf.Custom == nil {
				return false, nil
			}
			var c TargetCustom
			if err := json.Unmarshal(*tf.Custom, &c); err != nil {
				return false, fmt.Errorf("target %s: custom metadata: %w", img.target, err)
			}
			stored, err := r.targetPath(img.target, tf)
			if err != nil {
				return false, err
			}
			if _, err := os.Stat(stored); err != nil {
				return false, nil
			}
			n, sum, err := fileSHA256(ctx, img.path)
			if err != nil {
				return false, err
			}
			if n != c.DecompressedLength || sum != c.DecompressedSHA256 {
				return false, nil
			}
		}
	}
	return found, nil
}

// fileSHA256 returns a file's length and hex sha256.
func fileSHA256(ctx context.Context, path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx: ctx, r: f})
	if err != nil {
		return 0, "", fmt.Errorf("hash %s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// EnsureRelease publishes rel unless the repository offers it as it is
// already (HasRelease). It returns nil when nothing was published.
func (r *Repo) EnsureRelease(ctx context.Context, rel Release) (*Published, error) {
	has, err := r.HasRelease(ctx, rel)
	if err != nil {
		return nil, err
	}
	if has {
		return nil, nil
	}
	return r.AddRelease(ctx, rel)
}
