package applier

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "file")
	if err := WriteFileAtomic(p, []byte("one"), "0600"); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("two"), "0640"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "two" || fi.Mode().Perm() != 0o640 {
		t.Fatalf("content %q mode %v", b, fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	if err := WriteFileAtomic(p, nil, "rw"); err == nil {
		t.Fatal("bad mode accepted")
	}
}

func TestDiff(t *testing.T) {
	tests := []struct{ old, new, want string }{
		{"", "a\n", "--- f\n+++ f\n@@ -1,0 +1,1 @@\n+a\n"},
		{"a\nb\nc\n", "a\nB\nc\n", "--- f\n+++ f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"},
		{"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n", "1\n2\n3\n4\n5\n6\n7\n8\n9\nX\n", "--- f\n+++ f\n@@ -7,4 +7,4 @@\n 7\n 8\n 9\n-10\n+X\n"},
		{"a\n", "a\n", "--- f\n+++ f\n"},
	}
	for _, tt := range tests {
		if got := Diff("f", tt.old, tt.new); got != tt.want {
			t.Errorf("Diff(%q, %q) =\n%s\nwant\n%s", tt.old, tt.new, got, tt.want)
		}
	}
	// Two distant changes give two hunks.
	old := strings.Repeat("x\n", 20)
	new := "y\n" + strings.Repeat("x\n", 18) + "z\n"
	if got := Diff("f", old, new); strings.Count(got, "@@ -") != 2 {
		t.Errorf("want two hunks:\n%s", got)
	}
}

func TestParseSystemctl(t *testing.T) {
	tests := []struct {
		cmd   string
		verb  string
		units string
		ok    bool
	}{
		{"/usr/bin/systemctl try-restart kubelet.service", "try-restart", "kubelet.service", true},
		{"/bin/systemctl restart a.service b.service", "restart", "a.service b.service", true},
		{"systemctl daemon-reload", "daemon-reload", "", true},
		{"/usr/bin/systemctl --no-block restart x", "", "", false},
		{"/usr/bin/systemctl enable x", "", "", false},
		{"/usr/bin/systemctl restart", "", "", false},
		{"/usr/bin/corndog sysctl", "", "", false},
	}
	for _, tt := range tests {
		verb, units, ok := parseSystemctl(tt.cmd)
		if ok != tt.ok || verb != tt.verb || strings.Join(units, " ") != tt.units {
			t.Errorf("parseSystemctl(%q) = %q %q %v", tt.cmd, verb, units, ok)
		}
	}
}

func TestExecRunnerStaysUnderRoot(t *testing.T) {
	root := t.TempDir()
	r := ExecRunner{Root: root}
	if err := r.Run(context.Background(), "/bin/true", nil); err == nil || !strings.Contains(err.Error(), "not under the root") {
		t.Fatalf("host program ran from a development root: %v", err)
	}
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	os.WriteFile(filepath.Join(root, "bin", "say"), []byte("#!/bin/sh\necho \"$CHANGED_SETTINGS\" > \"$GANTRY_ROOT/out\"\n"), 0o755)
	if err := r.Run(context.Background(), "/bin/say", []string{"settings.a", "settings.b"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "out")); string(b) != "settings.a settings.b\n" {
		t.Fatalf("CHANGED_SETTINGS = %q", b)
	}
	if err := r.Run(context.Background(), "  ", nil); err == nil {
		t.Fatal("empty command accepted")
	}
}
