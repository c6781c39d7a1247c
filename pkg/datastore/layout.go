package datastore

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// CurrentLink is the name of the link that points at the datastore in use.
const CurrentLink = "current"

var versionRe = regexp.MustCompile(`^v?(\d+)\.(\d+)\.(\d+)$`)

// Version is a datastore version, which follows the OS version.
type Version struct{ Major, Minor, Patch int }

// ParseVersion parses "1.2.3" or "v1.2.3".
func ParseVersion(s string) (Version, error) {
	m := versionRe.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("invalid version %q: want MAJOR.MINOR.PATCH", s)
	}
	var v Version
	fmt.Sscan(m[1], &v.Major)
	fmt.Sscan(m[2], &v.Minor)
	fmt.Sscan(m[3], &v.Patch)
	return v, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Compare returns -1, 0 or 1.
func (v Version) Compare(o Version) int {
	for _, d := range [][2]int{{v.Major, o.Major}, {v.Minor, o.Minor}, {v.Patch, o.Patch}} {
		if d[0] < d[1] {
			return -1
		}
		if d[0] > d[1] {
			return 1
		}
	}
	return 0
}

// NewVersionDir creates an empty datastore directory v<version>_<random>
// under base and returns its path. It does not link it.
func NewVersionDir(base string, v Version) (string, error) {
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
func LinkVersion(base string, v Version, dir string) error {
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
	return SyncDir(base)
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
func CurrentVersion(base string) (Version, string, error) {
	dir, err := filepath.EvalSymlinks(filepath.Join(base, CurrentLink))
	if err != nil {
		return Version{}, "", fmt.Errorf("resolve %s/%s: %w", base, CurrentLink, err)
	}
	name := filepath.Base(dir)
	i := strings.IndexByte(name, '_')
	if i < 0 {
		return Version{}, "", fmt.Errorf("datastore directory %s has no version_random name", dir)
	}
	v, err := ParseVersion(name[:i])
	if err != nil {
		return Version{}, "", fmt.Errorf("datastore directory %s: %w", dir, err)
	}
	return v, dir, nil
}

// SyncDir fsyncs a directory, making renames and new entries in it durable.
func SyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
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

// MarshalText writes the version as x.y.z.
func (v Version) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText parses x.y.z or vx.y.z.
func (v *Version) UnmarshalText(b []byte) error {
	p, err := ParseVersion(string(b))
	if err != nil {
		return err
	}
	*v = p
	return nil
}
