package tufrepo

import (
	"bytes"
	"errors"
	"github.com/gantry-os/gantry/internal/testsupport"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommandLine builds the gantry binary once and runs `gantry repo`
// end to end: each step's exit status and output, in order.
func TestCommandLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gantry binary")
	}
	tmp := t.TempDir()
	bin := testsupport.Build(t, filepath.Join(tmp, "gantry"), "cmd/gantry")
	keys := filepath.Join(tmp, "keys")
	repo := filepath.Join(tmp, "repo")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	k := func(name string) string { return filepath.Join(keys, name) }
	img := t.TempDir()
	for name, body := range map[string]string{"boot.img": strings.Repeat("boot", 4096), "root.img": strings.Repeat("root", 9000), "hash.img": "hash", "mig": "#!/bin/sh\n"} {
		writeFile(t, img, name, []byte(body))
	}
	anchor := filepath.Join(tmp, "1.root.json")
	signing := []string{"--targets-key", k("targets"), "--snapshot-key", k("snapshot"), "--timestamp-key", k("timestamp")}
	release := func(extra ...string) []string {
		args := []string{"repo", "add-release", "--repo", repo, "--variant", "metal-dev", "--arch", "x86_64", "--version", "1.1.0",
			"--boot", filepath.Join(img, "boot.img"), "--root", filepath.Join(img, "root.img"), "--hash", filepath.Join(img, "hash.img"),
			"--migration", "migrate_v1.1.0_x=" + filepath.Join(img, "mig"), "--transition", "(1.0.0, 1.1.0)=migrate_v1.1.0_x.zst",
			"--waves", "accelerated", "--start-at", "2030-01-01T00:00:00Z"}
		return append(args, extra...)
	}
	boot := "gantry-metal-dev-x86_64-1.1.0-boot.img.zst"

	steps := []struct {
		name   string
		args   []string
		before func(t *testing.T)
		code   int
		stdout []string
		stderr []string
	}{
		{name: "keygen root", args: []string{"repo", "keygen", "--out", k("root")}, stdout: []string{"key ID"}},
		{name: "keygen targets", args: []string{"repo", "keygen", "--out", k("targets")}},
		{name: "keygen snapshot", args: []string{"repo", "keygen", "--out", k("snapshot")}},
		{name: "keygen timestamp", args: []string{"repo", "keygen", "--out", k("timestamp")}},
		{name: "keygen new root", args: []string{"repo", "keygen", "--out", k("root2")}},
		{name: "keygen refuses to overwrite", args: []string{"repo", "keygen", "--out", k("root")}, code: 1, stderr: []string{"already exists"}},
		{name: "init with an unmet threshold", args: append([]string{"repo", "init", "--repo", repo, "--root-key", k("root"), "--root-threshold", "2"}, signing...),
			code: 1, stderr: []string{"root role: threshold 2 is unmet"}},
		{name: "init without a timestamp key", args: []string{"repo", "init", "--repo", repo, "--root-key", k("root"), "--targets-key", k("targets"), "--snapshot-key", k("snapshot")},
			code: 2, stderr: []string{"no timestamp key given", "Usage:"}},
		{name: "init with a missing key file", args: append([]string{"repo", "init", "--repo", repo, "--root-key", k("nope")}, signing...),
			code: 1, stderr: []string{"root key: key file", k("nope")}},
		{name: "init with a bad expiry", args: append([]string{"repo", "init", "--repo", repo, "--root-key", k("root"), "--expires", "snapshot=soon"}, signing...),
			code: 2, stderr: []string{`--expires "snapshot=soon"`}},
		{name: "init", args: append([]string{"repo", "init", "--repo", repo, "--root-key", k("root"), "--expires", "timestamp=3d"}, signing...),
			stdout: []string{"created repository", "timestamp  version 1", "root.json in images"}},
		{name: "add-release", args: release(signing...), before: func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(repo, "metadata", "1.root.json"))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, tmp, "1.root.json", b)
		}, stdout: []string{"target " + boot, "target migrate_v1.1.0_x.zst", "targets    version 2"}},
		{name: "validate", args: []string{"repo", "validate", "--repo", repo},
			stdout: []string{"ok  " + boot, "(1.0.0, 1.1.0): migrate_v1.1.0_x.zst", "metal-dev x86_64 1.1.0 (max 1.1.0, 5 wave(s))", "repository is valid"}},
		{name: "add-release with another role's key", args: release("--targets-key", k("snapshot"), "--snapshot-key", k("snapshot"), "--timestamp-key", k("timestamp")),
			code: 1, stderr: []string{"targets key " + k("snapshot"), "does not match any targets key"}},
		{name: "add-release with a missing key file", args: release("--targets-key", k("gone"), "--snapshot-key", k("snapshot"), "--timestamp-key", k("timestamp")),
			code: 1, stderr: []string{"targets key: key file", k("gone")}},
		{name: "refresh", args: append([]string{"repo", "refresh", "--repo", repo}, signing...), stdout: []string{"timestamp  version 3", "targets    version 3"}},
		{name: "refresh timestamp only", args: []string{"repo", "refresh", "--repo", repo, "--timestamp-only", "--timestamp-key", k("timestamp")},
			stdout: []string{"timestamp  version 4", "targets    version 3"}},
		{name: "rotate-root", args: []string{"repo", "rotate-root", "--repo", repo, "--old-key", k("root"), "--new-root-key", k("root2")},
			stdout: []string{"wrote 2.root.json"}},
		{name: "validate from the old root", args: []string{"repo", "validate", "--repo", repo, "--root", anchor},
			stdout: []string{"root       version 2", "repository is valid"}},
		{name: "validate after the timestamp expires", args: []string{"repo", "validate", "--repo", repo, "--at", "in 8 days"},
			code: 1, stderr: []string{"timestamp.json is expired"}},
		{name: "validate a tampered target", args: []string{"repo", "validate", "--repo", repo}, before: func(t *testing.T) {
			p := storedTarget(t, repo, boot)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0xff
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, code: 1, stdout: []string{"FAIL  " + boot}, stderr: []string{"target " + boot + ": sha256 mismatch"}},
		{name: "validate without a repository", args: []string{"repo", "validate"}, code: 2},
		{name: "unknown command", args: []string{"nope"}, code: 2, stderr: []string{`unknown command "nope"`}},
		{name: "unknown repo command", args: []string{"repo", "nope"}, code: 2, stderr: []string{`unknown command "nope"`}},
	}
	for _, s := range steps {
		ok := t.Run(s.name, func(t *testing.T) {
			if s.before != nil {
				s.before(t)
			}
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, s.args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != s.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, s.code, &stdout, &stderr)
			}
			for _, w := range s.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, &stdout)
				}
			}
			for _, w := range s.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, &stderr)
				}
			}
		})
		if !ok {
			t.FailNow()
		}
	}
	for _, name := range []string{"root", "targets", "snapshot", "timestamp", "root2"} {
		st, err := os.Stat(k(name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o", name, st.Mode().Perm())
		}
	}
}
