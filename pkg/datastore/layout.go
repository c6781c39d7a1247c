package datastore

import (
	"crypto/rand"
	"fmt"
	"github.com/gantry-os/gantry/pkg/durable"
	"github.com/gantry-os/gantry/pkg/version"
	"os"
	"path/filepath"
	"strings"
)

// CurrentLink is the name of the link that points at the datastore in use.
const CurrentLink = "current"

// NewVersionDir creates an empty datastore directory v<version>_<random>
// under base and returns its path. It does not link it.
func NewVersionDir(base string, v version.Semver) (string, error) {
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", fmt.Errorf("create datastore base %s: %w", base, err)
	}
	dir := filepath.Join(base, "v"+v.String()+"_"+randomAlnum(16))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("create datastore directory: %w", err)
	}
	return dir, nil
}

// LinkVersion points the link chain at dir atomically:
// vX.Y.Z → dir, vX.Y → vX.Y.Z, vX → vX.Y, current → vX. Each link is made
// under a temporary name and renamed over the old one, patch level first and
// `current` last, then the base directory is synced, so a crash leaves
// `current` at either the old or the new datastore.
func LinkVersion(base string, v version.Semver, dir string) error {
	rel, err := filepath.Rel(base, dir)
	if err != nil || strings.Contains(rel, "/") {
		return fmt.Errorf("datastore directory %s is not directly under %s", dir, base)
	}
	patch := "v" + v.String()
	minor := fmt.Sprintf("v%d.%d", v.Major, v.Minor)
	major := fmt.Sprintf("v%d", v.Major)
	for _, l := range [][2]string{{patch, rel}, {minor, patch}, {major, minor}, {CurrentLink, major}} {
		if err := atomicSymlink(base, l[1], l[0]); err != nil {
			return err
		}
	}
	return durable.SyncDir(base)
}

func atomicSymlink(base, target, name string) error {
	tmp := filepath.Join(base, "."+name+".tmp"+randomAlnum(8))
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(base, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s: %w", name, err)
	}
	return nil
}

// CurrentVersion reads the version the `current` chain points at and the
// directory it resolves to.
func CurrentVersion(base string) (version.Semver, string, error) {
	dir, err := filepath.EvalSymlinks(filepath.Join(base, CurrentLink))
	if err != nil {
		return version.Semver{}, "", fmt.Errorf("resolve %s/%s: %w", base, CurrentLink, err)
	}
	name := filepath.Base(dir)
	i := strings.IndexByte(name, '_')
	if i < 0 {
		return version.Semver{}, "", fmt.Errorf("datastore directory %s has no version_random name", dir)
	}
	v, err := version.Parse(name[:i])
	if err != nil {
		return version.Semver{}, "", fmt.Errorf("datastore directory %s: %w", dir, err)
	}
	return v, dir, nil
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func randomAlnum(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}
