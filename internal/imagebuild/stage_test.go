package imagebuild

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStagePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"./", ""},
		{"./bin/true", "usr/bin/true"},
		{"./sbin/init", "usr/sbin/init"},
		{"./lib/systemd/systemd", "usr/lib/systemd/systemd"},
		{"./lib64/ld-linux-x86-64.so.2", "usr/lib64/ld-linux-x86-64.so.2"},
		{"./usr/bin/x", "usr/bin/x"},
		{"./etc/x", "etc/x"},
		{"/binary/x", "binary/x"},
		{"./../../etc/passwd", "etc/passwd"},
		{"./lib/../bin/x", "usr/bin/x"},
	}
	for _, tc := range tests {
		if got := stagePath(tc.in); got != tc.want {
			t.Errorf("stagePath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	s := newTestStage(t)
	put(t, s, map[string]string{
		"usr/lib/systemd/systemd": "\x7fELF",
		"usr/sbin/init":           "-> /lib/systemd/systemd",
		"usr/bin/rel":             "-> ../lib/systemd/systemd",
		"usr/bin/loop1":           "-> loop2",
		"usr/bin/loop2":           "-> loop1",
		"etc/os-release":          "-> ../usr/lib/os-release",
	})
	tests := []struct{ in, want string }{
		{"sbin/init", "usr/lib/systemd/systemd"},
		{"/usr/sbin/init", "usr/lib/systemd/systemd"},
		{"bin/rel", "usr/lib/systemd/systemd"},
		{"etc/os-release", "usr/lib/os-release"},
		{"lib/../etc", "etc"},
	}
	for _, tc := range tests {
		got, err := s.resolve(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("resolve(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := s.resolve("usr/bin/loop1"); err == nil || !strings.Contains(err.Error(), "too many links") {
		t.Errorf("link loop: %v", err)
	}
}

// Packages are extracted with dpkg-deb's tar and placed by Go: the /usr
// merge, modes with set-id bits, links, hard links and folder modes.
func TestExtractDeb(t *testing.T) {
	needTools(t, "dpkg-deb")
	ctx := context.Background()
	debs := t.TempDir()
	a := fakeDeb(t, debs, "fake-a", "1.0", "", []fakeFile{
		{path: "/bin/tool", data: "\x7fELF tool", mode: 0o755},
		{path: "/usr/bin/suid", data: "\x7fELF suid", mode: os.ModeSetuid | 0o755},
		{path: "/lib/x86_64-linux-gnu/libx.so.1.2", data: "lib"},
		{path: "/lib/x86_64-linux-gnu/libx.so.1", link: "libx.so.1.2"},
		{path: "/sbin/init", link: "/lib/systemd/systemd"},
		{path: "/usr/bin/hard", hard: "/bin/tool"},
		{path: "/etc/secret.d", mode: os.ModeDir | 0o700},
		{path: "/var/lib/thing/state", data: "s"},
	})
	// b replaces a's file and ships into a folder a made.
	b := fakeDeb(t, debs, "fake-b", "2.0", "", []fakeFile{
		{path: "/usr/bin/tool", data: "\x7fELF tool v2", mode: 0o755},
		{path: "/etc/secret.d/key", data: "k", mode: 0o600},
	})
	s := newTestStage(t)
	for _, d := range []string{a, b} {
		if err := s.extractDeb(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.finish(); err != nil {
		t.Fatal(err)
	}
	check := func(rel string, mode fs.FileMode) {
		t.Helper()
		fi, err := s.root.Lstat(rel)
		if err != nil {
			t.Errorf("/%s: %v", rel, err)
			return
		}
		if fi.Mode() != mode {
			t.Errorf("/%s has mode %v, want %v", rel, fi.Mode(), mode)
		}
	}
	check("bin", fs.ModeSymlink|0o777)
	check("usr/bin/tool", 0o755)
	check("usr/bin/suid", fs.ModeSetuid|0o755)
	check("usr/lib/x86_64-linux-gnu/libx.so.1", fs.ModeSymlink|0o777)
	check("etc/secret.d", fs.ModeDir|0o700)
	check("etc/secret.d/key", 0o600)
	if data, _ := s.readFile("bin/tool"); string(data) != "\x7fELF tool v2" {
		t.Errorf("/bin/tool = %q, want the later package's", data)
	}
	if target, _ := s.root.Readlink("usr/sbin/init"); target != "/lib/systemd/systemd" {
		t.Errorf("/usr/sbin/init -> %q", target)
	}
	// The hard link was made to a's file, which b then replaced.
	if data, _ := s.root.ReadFile("usr/bin/hard"); string(data) != "\x7fELF tool" {
		t.Errorf("/usr/bin/hard = %q", data)
	}
	if s.exists("lib/x86_64-linux-gnu") && !s.exists("usr/lib/x86_64-linux-gnu/libx.so.1.2") {
		t.Error("library not under /usr/lib")
	}
	if len(s.foreignOwners) != 0 {
		t.Errorf("foreign owners %v", s.foreignOwners)
	}
}

// A package cannot make the build write outside the tree through a link.
func TestExtractDebStaysInside(t *testing.T) {
	needTools(t, "dpkg-deb")
	outside := t.TempDir()
	debs := t.TempDir()
	evil := fakeDeb(t, debs, "fake-evil", "1.0", "", []fakeFile{
		{path: "/usr/share/escape", link: outside},
	})
	evil2 := fakeDeb(t, debs, "fake-evil2", "1.0", "", []fakeFile{
		{path: "/usr/share/escape/pwned", data: "x"},
	})
	s := newTestStage(t)
	if err := s.extractDeb(context.Background(), evil); err != nil {
		t.Fatal(err)
	}
	err := s.extractDeb(context.Background(), evil2)
	if err == nil {
		t.Error("extracting through an absolute link succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "pwned")); err == nil {
		t.Fatal("a package wrote outside the staging tree")
	}
}
