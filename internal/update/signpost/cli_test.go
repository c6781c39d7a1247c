package signpost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/gantry-os/gantry/internal/testsupport"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/cli"
)

// runCLI runs the signpost command line in-process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	cmd := NewCommand()
	cmd.SetOut(&out)
	code = cli.Execute(context.Background(), cmd, args, &errb)
	return code, out.String(), errb.String()
}

func TestCLI(t *testing.T) {
	img := newImage(t, disklayout.Options{})
	tests := []struct {
		args       []string
		code       int
		out, err   string // substrings of stdout and stderr
		notOut     string
		wantStatus string // flags after the command, "" to skip
	}{
		{args: []string{}, code: 2, err: "no command given"},
		{args: []string{"frobnicate"}, code: 2, err: `unknown command "frobnicate"`},
		{args: []string{"--disk", img, "--active", "C", "status"}, code: 2, err: "--active: invalid partition set"},
		{args: []string{"--active", "A", "status"}, code: 2, err: "--active needs --disk"},
		{args: []string{"--disk", img, "status", "extra"}, code: 2, err: "unknown command"},
		{args: []string{"--disk", img, "--bogus", "status"}, code: 2, err: "unknown flag"},
		{args: []string{"--disk", img, "clear-inactive"}, code: 2, err: "clear-inactive on --disk needs --active A|B"},
		{args: []string{"--disk", filepath.Join(t.TempDir(), "missing.img"), "status"}, code: 1, err: "no such file"},
		{
			args: []string{"--disk", img, "status"}, code: 0,
			out: "OS disk: " + img + "\nSet A:   boot=#3 root=#4 hash=#5  priority=1 tries_left=0 successful=true\n" +
				"Set B:   boot=#8 root=#9 hash=#10  priority=0 tries_left=0 successful=false\n" +
				"Active:  unknown\nNext:    Set A\nBoot has ever succeeded: false\n",
		},
		{args: []string{"--disk", img, "has-boot-ever-succeeded"}, code: 0, notOut: "true"},
		{args: []string{"--disk", img, "--active", "a", "upgrade-to-inactive"}, code: 1,
			err: "signpost: upgrade to inactive set B: inactive set is not marked valid (tries_left=0)\n"},
		{args: []string{"--disk", img, "--active", "A", "rollback-to-inactive"}, code: 1,
			err: "inactive set would not boot (priority=0 tries_left=0 successful=false)"},
		{args: []string{"--disk", img, "--active", "A", "mark-inactive-valid"}, code: 0, wantStatus: "A{p1 t0 s1} B{p0 t1 s0}"},
		{args: []string{"--disk", img, "--active", "A", "upgrade-to-inactive"}, code: 0, wantStatus: "A{p1 t0 s1} B{p2 t1 s0}"},
		{args: []string{"--disk", img, "--active", "A", "upgrade-to-inactive"}, code: 1,
			err: "inactive set is already marked for upgrade (priority=2 successful=false)"},
		{args: []string{"--disk", img, "--active", "A", "cancel-upgrade"}, code: 0, wantStatus: "A{p2 t0 s1} B{p0 t1 s0}"},
		{args: []string{"--disk", img, "--active", "A", "upgrade-to-inactive"}, code: 0, wantStatus: "A{p1 t0 s1} B{p2 t1 s0}"},
		{args: []string{"--disk", img, "--active", "B", "mark-successful-boot"}, code: 0, wantStatus: "A{p1 t0 s1} B{p2 t1 s1}"},
		{args: []string{"--disk", img, "has-boot-ever-succeeded"}, code: 0, out: "true\n"},
		{args: []string{"--disk", img, "--active", "B", "status"}, code: 0,
			out: "Set B:   boot=#8 root=#9 hash=#10  priority=2 tries_left=1 successful=true  (active)\nActive:  Set B\nNext:    Set B\nBoot has ever succeeded: true\n"},
		{args: []string{"--disk", img, "--active", "B", "rollback-to-inactive"}, code: 0, wantStatus: "A{p2 t0 s1} B{p1 t1 s1}"},
		{args: []string{"--disk", img, "--active", "B", "clear-inactive"}, code: 0, wantStatus: "A{p0 t0 s0} B{p1 t1 s1}"},
		{args: []string{"--disk", img, "rewrite-table"}, code: 0, wantStatus: "A{p0 t0 s0} B{p1 t1 s1}"},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(tt.args...)
		name := strings.Join(tt.args, " ")
		if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errOut, tt.err) ||
			(tt.notOut != "" && strings.Contains(out, tt.notOut)) {
			t.Errorf("signpost %s: exit %d\nstdout: %s\nstderr: %s\nwant exit %d, stdout ∋ %q, stderr ∋ %q",
				name, code, out, errOut, tt.code, tt.out, tt.err)
			continue
		}
		if tt.code == 2 && !strings.Contains(errOut, "Usage:") {
			t.Errorf("signpost %s: usage error without usage:\n%s", name, errOut)
		}
		if tt.wantStatus != "" {
			s, err := Load(img, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := flags(s); got != tt.wantStatus {
				t.Errorf("after signpost %s: %s, want %s", name, got, tt.wantStatus)
			}
		}
		if err := disklayout.Verify(img); err != nil {
			t.Errorf("after signpost %s: %v", name, err)
		}
	}
}

func TestCLIStatusJSON(t *testing.T) {
	img := newImage(t, disklayout.Options{})
	code, out, errOut := runCLI("--disk", img, "--active", "A", "status", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if st.Disk != img || st.Active != A || st.Next != A || st.BootHasEverSucceeded || len(st.Sets) != 2 {
		t.Fatalf("status %+v", st)
	}
	a, b := st.Sets[0], st.Sets[1]
	if !a.Active || a.Priority != 1 || !a.Successful || !a.WillBoot || a.Boot.Name != "GANTRY-BOOT-A" || a.Root.Number != 4 || a.Hash.Number != 5 {
		t.Errorf("set A %+v", a)
	}
	if b.Active || b.Priority != 0 || b.WillBoot || b.Root.Name != "GANTRY-ROOT-B" || b.Boot.GUID == "" || b.Boot.Device != "" {
		t.Errorf("set B %+v", b)
	}
	for _, key := range []string{`"tries_left": 0`, `"will_boot": true`, `"next": "A"`, `"active": "A"`} {
		if !strings.Contains(out, key) {
			t.Errorf("JSON lacks %s:\n%s", key, out)
		}
	}
}

// TestBinaryEndToEnd builds cmd/signpost and walks an update through the real
// binary, with GRUB's boot emulated in between.
func TestBinaryEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := testsupport.Build(t, filepath.Join(t.TempDir(), "signpost"), "cmd/signpost")
	img := newImage(t, disklayout.Options{})
	sp := func(wantCode int, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			code = exitErr.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode {
			t.Fatalf("signpost %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, &out, &errb)
		}
		return out.String() + errb.String()
	}
	boot := func() disklayout.SetID {
		t.Helper()
		s, err := Load(img, "")
		if err != nil {
			t.Fatal(err)
		}
		id, err := SimulateBoot(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Save(); err != nil {
			t.Fatal(err)
		}
		return id
	}

	sp(2, "--disk", img, "--active")
	sp(0, "--disk", img, "--active", "A", "clear-inactive")
	sp(0, "--disk", img, "--active", "A", "mark-inactive-valid")
	sp(0, "--disk", img, "--active", "A", "upgrade-to-inactive")
	if out := sp(0, "--disk", img, "--active", "A", "status"); !strings.Contains(out, "Next:    Set B") {
		t.Fatalf("status after upgrade:\n%s", out)
	}
	if got := boot(); got != B {
		t.Fatalf("booted %s after the upgrade", got)
	}
	// Not marked successful: the next boot falls back to A.
	if got := boot(); got != A {
		t.Fatalf("booted %s after a failed trial of B", got)
	}
	if out := sp(0, "--disk", img, "has-boot-ever-succeeded"); out != "" {
		t.Fatalf("has-boot-ever-succeeded printed %q", out)
	}
	sp(1, "--disk", img, "--active", "A", "rollback-to-inactive")
	sp(0, "--disk", img, "--active", "A", "mark-successful-boot")
	if out := sp(0, "--disk", img, "has-boot-ever-succeeded"); out != "true\n" {
		t.Fatalf("has-boot-ever-succeeded printed %q", out)
	}
	out := sp(0, "--disk", img, "--active", "A", "status", "--json")
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Next != A || !st.BootHasEverSucceeded {
		t.Fatalf("status %+v, %v", st, err)
	}
	if err := disklayout.Verify(img); err != nil {
		t.Fatal(err)
	}
}
