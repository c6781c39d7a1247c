// Package osrelease reads the os-release file of a Gantry image: the
// variant, version and build that the API reports and that the datastore
// version follows.
package osrelease

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// DefaultPath is where a Gantry image keeps its release file.
const DefaultPath = "/usr/lib/os-release"

// Release is the subset of os-release the API exposes, with the API's
// snake_case names.
type Release struct {
	PrettyName string `json:"pretty_name"`
	VariantID  string `json:"variant_id"`
	VersionID  string `json:"version_id"`
	BuildID    string `json:"build_id"`
	Arch       string `json:"arch"`
}

// Fields returns the release as field name → value, for prefix filtering.
func (r Release) Fields() map[string]string {
	return map[string]string{
		"pretty_name": r.PrettyName, "variant_id": r.VariantID, "version_id": r.VersionID,
		"build_id": r.BuildID, "arch": r.Arch,
	}
}

// Arch is the machine name of the running architecture (x86_64, aarch64).
func Arch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}

// Read parses an os-release file.
func Read(path string) (Release, error) {
	f, err := os.Open(path)
	if err != nil {
		return Release{}, fmt.Errorf("read release file: %w", err)
	}
	defer f.Close()
	vals := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return Release{}, fmt.Errorf("%s:%d: expected KEY=value", path, n)
		}
		if strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "'") {
			if uq, err := strconv.Unquote(v); err == nil {
				v = uq
			} else {
				v = strings.Trim(v, `"'`)
			}
		}
		vals[k] = v
	}
	if err := sc.Err(); err != nil {
		return Release{}, fmt.Errorf("read %s: %w", path, err)
	}
	return Release{
		PrettyName: vals["PRETTY_NAME"], VariantID: vals["VARIANT_ID"], VersionID: vals["VERSION_ID"],
		BuildID: vals["BUILD_ID"], Arch: Arch(),
	}, nil
}
