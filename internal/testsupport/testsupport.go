// Package testsupport owns what a test does when something it needs from
// the host is missing: a program (qemu-system-x86_64, mkfs.erofs,
// veritysetup, …), a file (OVMF's firmware, the built metal-dev image, the
// extracted test kernel) or a capability (root, loop devices, network
// namespaces). On a developer's machine the test is skipped. Under CI
// (the environment variable CI is "true" or "1") it fails instead, naming
// what is missing and the step that provides it: there a skip would hide
// a missing install step, and the test would never run again unnoticed.
//
// It also owns the table of the programs the tests run and the Debian
// package that has each one, which scripts/deps.sh's ensure_deps must
// install (a test of this package checks that it does).
package testsupport

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// TB is the part of testing.TB the helpers use; *testing.T and *testing.B
// satisfy it.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Host is what the helpers ask the machine. Tests of this package replace
// its functions; other tests use the package functions, which ask the real
// host.
type Host struct {
	Getenv   func(string) string
	LookPath func(string) (string, error)
	Stat     func(string) (os.FileInfo, error)
	Geteuid  func() int
}

var host = Host{Getenv: os.Getenv, LookPath: exec.LookPath, Stat: os.Stat, Geteuid: os.Geteuid}

// InCI reports whether the tests run under CI: CI is "true" (in any case)
// or "1".
func InCI() bool { return host.InCI() }

// Missing skips the test, or under CI fails it, because what is missing.
// install says how to provide it ("apt-get install -y ovmf", "make
// image").
func Missing(t TB, what, install string) {
	t.Helper()
	host.Missing(t, what, install)
}

// Require is Missing(t, what, install) when ok is false.
func Require(t TB, ok bool, what, install string) {
	t.Helper()
	host.Require(t, ok, what, install)
}

// RequireTool returns the path of the program tool (a name looked up in
// PATH, or a path), and is Missing when it is not installed. The install
// step comes from the package table (Package).
func RequireTool(t TB, tool string) string {
	t.Helper()
	return host.RequireTool(t, tool)
}

// RequireTools is RequireTool for each of tools, in order.
func RequireTools(t TB, tools ...string) {
	t.Helper()
	host.RequireTools(t, tools...)
}

// RequireFile is Missing when path does not exist.
func RequireFile(t TB, path, install string) {
	t.Helper()
	host.RequireFile(t, path, install)
}

// RequireRoot is Missing unless the test runs as root; why says what
// needs it.
func RequireRoot(t TB, why string) {
	t.Helper()
	host.RequireRoot(t, why)
}

// InCI reports whether h's environment says CI.
func (h Host) InCI() bool {
	v := h.Getenv("CI")
	return strings.EqualFold(v, "true") || v == "1"
}

// Missing skips t, or under CI fails it.
func (h Host) Missing(t TB, what, install string) {
	t.Helper()
	if h.InCI() {
		t.Fatalf("%s; under CI a missing prerequisite fails the test instead of skipping it: %s", what, install)
		return
	}
	t.Skipf("%s; to run it: %s", what, install)
}

// Require is h.Missing when ok is false.
func (h Host) Require(t TB, ok bool, what, install string) {
	t.Helper()
	if !ok {
		h.Missing(t, what, install)
	}
}

// RequireTool is the package's RequireTool on h.
func (h Host) RequireTool(t TB, tool string) string {
	t.Helper()
	path, err := h.LookPath(tool)
	if err != nil {
		h.Missing(t, tool+" is not installed", InstallStep(tool))
		return ""
	}
	return path
}

// RequireTools is the package's RequireTools on h.
func (h Host) RequireTools(t TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if h.RequireTool(t, tool) == "" {
			return
		}
	}
}

// RequireFile is the package's RequireFile on h.
func (h Host) RequireFile(t TB, path, install string) {
	t.Helper()
	if _, err := h.Stat(path); err != nil {
		h.Missing(t, fmt.Sprintf("no %s", path), install)
	}
}

// RequireRoot is the package's RequireRoot on h.
func (h Host) RequireRoot(t TB, why string) {
	t.Helper()
	if h.Geteuid() != 0 {
		h.Missing(t, why+" needs root", "run the tests as root")
	}
}

// A source is where a Debian machine gets a package from.
type source int

const (
	depsApt      source = iota // ensure_deps' apt_install list in scripts/deps.sh
	depsGo                     // scripts/deps.sh's install_go
	depsRegistry               // scripts/deps.sh's install_registry
	debBase                    // every Debian system (Priority: required)
)

// tools maps each program a test runs to the Debian package that installs
// it, and where that package comes from.
var tools = map[string]struct {
	pkg  string
	from source
}{
	"qemu-system-x86_64": {"qemu-system-x86", depsApt},
	"qemu-img":           {"qemu-utils", depsApt},
	"mkfs.erofs":         {"erofs-utils", depsApt},
	"fsck.erofs":         {"erofs-utils", depsApt},
	"veritysetup":        {"cryptsetup-bin", depsApt},
	"mkfs.ext4":          {"e2fsprogs", depsApt},
	"debugfs":            {"e2fsprogs", depsApt},
	"dumpe2fs":           {"e2fsprogs", depsApt},
	"e2fsck":             {"e2fsprogs", depsApt},
	"e2label":            {"e2fsprogs", depsApt},
	"sfdisk":             {"fdisk", depsApt},
	"sgdisk":             {"gdisk", depsApt},
	"genisoimage":        {"genisoimage", depsApt},
	"xorriso":            {"xorriso", depsApt},
	"mkfs.fat":           {"dosfstools", depsApt},
	"mmd":                {"mtools", depsApt},
	"mcopy":              {"mtools", depsApt},
	"minfo":              {"mtools", depsApt},
	"gpg":                {"gpg", depsApt},
	"gpgconf":            {"gpgconf", depsApt},
	"apt-get":            {"apt", debBase},
	"apt-cache":          {"apt", debBase},
	"dpkg-deb":           {"dpkg", debBase},
	"losetup":            {"mount", debBase},
	"ip":                 {"iproute2", depsApt},
	"mount":              {"mount", debBase},
	"blkid":              {"util-linux", debBase},
	"wipefs":             {"util-linux", debBase},
	"go":                 {"Go toolchain", depsGo},
	"docker-registry":    {"docker-registry", depsRegistry},
}

// Package is the Debian package that installs the program tool (a name or
// a path), or "" when the table does not know it.
func Package(tool string) string {
	return tools[filepath.Base(tool)].pkg
}

// InstallStep says how to install the program tool.
func InstallStep(tool string) string {
	e, ok := tools[filepath.Base(tool)]
	switch {
	case !ok:
		return "install it, and add its Debian package to ensure_deps in scripts/deps.sh"
	case e.from == depsGo:
		return "put the Go toolchain on PATH (scripts/deps.sh installs it in /usr/local/go)"
	case e.from == depsRegistry:
		return "apt-get install -y docker-registry (scripts/deps.sh's install_registry installs it)"
	case e.from == debBase:
		return fmt.Sprintf("apt-get install -y %s (part of every Debian system)", e.pkg)
	}
	return fmt.Sprintf("apt-get install -y %s (scripts/deps.sh's ensure_deps installs it)", e.pkg)
}

// RepoRoot is the Gantry source tree the tests run in (the folder of go.mod),
// found from this file's own path, so it does not depend on the package
// folder's depth.
func RepoRoot(t TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); !ok || err != nil {
		t.Fatalf("the Gantry source tree is not above %s", file)
	}
	return root
}

// RepoPath is a file of the source tree, by its path from the tree's root
// (examples/user-data.toml).
func RepoPath(t TB, rel string) string {
	t.Helper()
	return filepath.Join(RepoRoot(t), filepath.FromSlash(rel))
}
