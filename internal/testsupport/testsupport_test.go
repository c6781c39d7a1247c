package testsupport

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fakeTB records what a helper did instead of ending the test.
type fakeTB struct {
	skipped, failed []string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = append(f.skipped, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = append(f.failed, fmt.Sprintf(format, args...))
}

// fakeHost has the tools and files named and runs as uid; ci is CI's value.
func fakeHost(ci string, uid int, have ...string) Host {
	ok := map[string]bool{}
	for _, h := range have {
		ok[h] = true
	}
	return Host{
		Getenv: func(k string) string {
			if k == "CI" {
				return ci
			}
			return ""
		},
		LookPath: func(name string) (string, error) {
			if ok[name] {
				return "/usr/bin/" + name, nil
			}
			return "", exec.ErrNotFound
		},
		Stat: func(name string) (os.FileInfo, error) {
			if ok[name] {
				return nil, nil
			}
			return nil, fs.ErrNotExist
		},
		Geteuid: func() int { return uid },
	}
}

func TestInCI(t *testing.T) {
	for _, tc := range []struct {
		ci   string
		want bool
	}{
		{"", false}, {"true", true}, {"TRUE", true}, {"True", true}, {"1", true},
		{"false", false}, {"0", false}, {"yes", false},
	} {
		if got := fakeHost(tc.ci, 0).InCI(); got != tc.want {
			t.Errorf("CI=%q: InCI() = %v, want %v", tc.ci, got, tc.want)
		}
	}
}

func TestHelpers(t *testing.T) {
	for _, tc := range []struct {
		name string
		have []string
		uid  int
		call func(Host, TB)
		// want is the message of the skip (CI unset) and of the failure
		// (CI=true); "" when the prerequisite is there.
		want string
	}{
		{"tool there", []string{"mkfs.erofs"}, 0,
			func(h Host, t TB) { h.RequireTool(t, "mkfs.erofs") }, ""},
		{"tool missing", nil, 0,
			func(h Host, t TB) { h.RequireTool(t, "mkfs.erofs") },
			"mkfs.erofs is not installed%apt-get install -y erofs-utils (scripts/deps.sh's ensure_deps installs it)"},
		{"tool by path", nil, 0,
			func(h Host, t TB) { h.RequireTool(t, "/usr/sbin/mkfs.ext4") },
			"/usr/sbin/mkfs.ext4 is not installed%apt-get install -y e2fsprogs"},
		{"unknown tool", nil, 0,
			func(h Host, t TB) { h.RequireTool(t, "frobnicate") },
			"frobnicate is not installed%add its Debian package to ensure_deps in scripts/deps.sh"},
		{"base tool", nil, 0,
			func(h Host, t TB) { h.RequireTool(t, "dpkg-deb") },
			"dpkg-deb is not installed%apt-get install -y dpkg (part of every Debian system)"},
		{"go", nil, 0,
			func(h Host, t TB) { h.RequireTool(t, "go") }, "go is not installed%Go toolchain"},
		{"tools all there", []string{"mkfs.ext4", "debugfs"}, 0,
			func(h Host, t TB) { h.RequireTools(t, "mkfs.ext4", "debugfs") }, ""},
		{"tools: the first missing one", []string{"mkfs.ext4"}, 0,
			func(h Host, t TB) { h.RequireTools(t, "mkfs.ext4", "debugfs", "sgdisk") },
			"debugfs is not installed%e2fsprogs"},
		{"file there", []string{"/usr/share/ovmf/OVMF.fd"}, 0,
			func(h Host, t TB) { h.RequireFile(t, "/usr/share/ovmf/OVMF.fd", "apt-get install -y ovmf") }, ""},
		{"file missing", nil, 0,
			func(h Host, t TB) { h.RequireFile(t, "/usr/share/ovmf/OVMF.fd", "apt-get install -y ovmf") },
			"no /usr/share/ovmf/OVMF.fd%apt-get install -y ovmf"},
		{"root", nil, 0, func(h Host, t TB) { h.RequireRoot(t, "a loop mount") }, ""},
		{"not root", nil, 1000, func(h Host, t TB) { h.RequireRoot(t, "a loop mount") },
			"a loop mount needs root%run the tests as root"},
		{"require true", nil, 0, func(h Host, t TB) { h.Require(t, true, "no image", "make image") }, ""},
		{"require false", nil, 0, func(h Host, t TB) { h.Require(t, false, "no image", "make image") },
			"no image%make image"},
		{"missing", nil, 0, func(h Host, t TB) { h.Missing(t, "no SEEK_DATA", "another file system") },
			"no SEEK_DATA%another file system"},
	} {
		for _, ci := range []string{"", "true"} {
			t.Run(tc.name+" CI="+ci, func(t *testing.T) {
				var tb fakeTB
				tc.call(fakeHost(ci, tc.uid, tc.have...), &tb)
				got, other := tb.skipped, tb.failed
				if ci != "" {
					got, other = tb.failed, tb.skipped
				}
				if len(other) > 0 {
					t.Fatalf("skipped %q, failed %q", tb.skipped, tb.failed)
				}
				if tc.want == "" {
					if len(got) > 0 {
						t.Fatalf("want nothing, got %q", got)
					}
					return
				}
				if len(got) != 1 {
					t.Fatalf("want one message, got %q", got)
				}
				what, install, _ := strings.Cut(tc.want, "%")
				if !strings.HasPrefix(got[0], what) || !strings.Contains(got[0], install) {
					t.Errorf("message %q: want it to start with %q and name %q", got[0], what, install)
				}
				if ci != "" && !strings.Contains(got[0], "under CI") {
					t.Errorf("failure %q does not say why it is not a skip", got[0])
				}
			})
		}
	}
}

// TestRealTB runs the package's RequireTool on a real test, in a child
// test process whose PATH has no qemu-system-x86_64: without CI the test
// is skipped, under CI=true (or 1) it fails and names the install step.
func TestRealTB(t *testing.T) {
	if os.Getenv("GANTRY_TESTSUPPORT_CHILD") == "1" {
		RequireTool(t, "qemu-system-x86_64")
		t.Log("qemu-system-x86_64 found")
		return
	}
	for _, tc := range []struct {
		ci, want string
		fails    bool
	}{
		{"", "--- SKIP: TestRealTB", false},
		{"false", "--- SKIP: TestRealTB", false},
		{"true", "--- FAIL: TestRealTB", true},
		{"1", "--- FAIL: TestRealTB", true},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRealTB$", "-test.v")
		cmd.Env = append(os.Environ(), "GANTRY_TESTSUPPORT_CHILD=1", "CI="+tc.ci,
			"PATH="+filepath.Join(t.TempDir(), "empty"))
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.fails || !strings.Contains(string(out), tc.want) ||
			!strings.Contains(string(out), "qemu-system-x86_64 is not installed") ||
			!strings.Contains(string(out), "apt-get install -y qemu-system-x86") {
			t.Errorf("CI=%q: %v, want %q naming the tool and its package:\n%s", tc.ci, err, tc.want, out)
		}
	}
}

// TestDepsInstallsEveryPackage checks that scripts/deps.sh's ensure_deps
// installs the package of every program in the table that is not part of
// every Debian system, so that under CI no test fails for want of it.
func TestDepsInstallsEveryPackage(t *testing.T) {
	b, err := os.ReadFile(RepoPath(t, "scripts/deps.sh"))
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(b), "\nensure_deps() {")
	if !ok {
		t.Fatal("scripts/deps.sh has no ensure_deps")
	}
	m := regexp.MustCompile(`(?s)\n\s*apt_install ((?:[^\n]*\\\n)*[^\n]*)`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("ensure_deps calls no apt_install")
	}
	installed := map[string]bool{}
	for _, w := range strings.Fields(strings.ReplaceAll(m[1], "\\\n", " ")) {
		installed[w] = true
	}
	if !installed["e2fsprogs"] {
		t.Fatalf("parsed ensure_deps' list wrongly: %v", installed)
	}
	for tool, e := range tools {
		if e.from == depsApt && !installed[e.pkg] {
			t.Errorf("tests run %s, from %s, which ensure_deps in scripts/deps.sh does not install", tool, e.pkg)
		}
	}
	if !strings.Contains(string(b), "install_go") {
		t.Error("scripts/deps.sh no longer installs Go")
	}
	if !strings.Contains(body, "\n  install_registry\n") || !strings.Contains(string(b), "apt_install docker-registry") {
		t.Error("scripts/deps.sh's ensure_deps no longer installs the registry (docker-registry)")
	}
}

func TestPackage(t *testing.T) {
	for tool, want := range map[string]string{
		"qemu-system-x86_64": "qemu-system-x86", "/usr/sbin/mkfs.ext4": "e2fsprogs", "veritysetup": "cryptsetup-bin",
		"nope": "",
	} {
		if got := Package(tool); got != want {
			t.Errorf("Package(%q) = %q, want %q", tool, got, want)
		}
	}
}

func TestGoBuild(t *testing.T) {
	RequireTool(t, "go")
	dir := t.TempDir()
	for _, pkg := range []string{"cmd/settings-generator", Module + "/cmd/settings-generator"} {
		out := filepath.Join(dir, "gen")
		if err := GoBuild(context.Background(), out, pkg); err != nil {
			t.Fatalf("%s: %v", pkg, err)
		}
		if fi, err := os.Stat(out); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s: no executable at %s: %v", pkg, out, err)
		}
		os.Remove(out)
	}
	err := GoBuild(context.Background(), filepath.Join(dir, "x"), "cmd/no-such-command")
	if err == nil || !strings.Contains(err.Error(), "go build "+Module+"/cmd/no-such-command") {
		t.Errorf("a missing package: %v", err)
	}
}
