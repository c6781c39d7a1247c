package version

import (
	"fmt"
	"regexp"
)

var semverRE = regexp.MustCompile(`^v?(\d+)\.(\d+)\.(\d+)$`)

// Semver is an OS version, MAJOR.MINOR.PATCH. A node's datastore version
// follows it, update manifests order releases by it, and migrations are
// named by it.
type Semver struct{ Major, Minor, Patch int }

// Parse parses "1.2.3" or "v1.2.3".
func Parse(s string) (Semver, error) {
	m := semverRE.FindStringSubmatch(s)
	if m == nil {
		return Semver{}, fmt.Errorf("invalid version %q: want MAJOR.MINOR.PATCH", s)
	}
	var v Semver
	fmt.Sscan(m[1], &v.Major)
	fmt.Sscan(m[2], &v.Minor)
	fmt.Sscan(m[3], &v.Patch)
	return v, nil
}

func (v Semver) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Compare returns -1, 0 or 1.
func (v Semver) Compare(o Semver) int {
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

// MarshalText writes the version as x.y.z.
func (v Semver) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText parses x.y.z or vx.y.z.
func (v *Semver) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*v = p
	return nil
}
