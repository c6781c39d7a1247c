package earlyboot_test

import (
	"bytes"
	"errors"
	"github.com/gantry-os/gantry/internal/testsupport"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/imdstest"
)

// buildCommand builds cmd/early-boot-config into a temporary directory.
func buildCommand(t *testing.T) string {
	t.Helper()
	return testsupport.Build(t, filepath.Join(t.TempDir(), "early-boot-config"), "cmd/early-boot-config")
}

type cmdResult struct {
	code           int
	stdout, stderr string
}

func runCommand(t *testing.T, bin string, args ...string) cmdResult {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return cmdResult{code, out.String(), errOut.String()}
}

func TestCommandLine(t *testing.T) {
	bin := buildCommand(t)
	n := startNode(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "state", "early-boot-config.ran")
	base := []string{"--socket-path", n.socket, "--marker", marker, "--os-release", filepath.Join(dir, "no-os-release")}

	a := writeFile(t, dir, "a.toml", []byte("[settings]\nmotd = \"a\"\n[settings.network]\nhostname = \"from-a\"\n"))
	b := writeFile(t, dir, "b.toml", gzipped(t, "[settings]\nmotd = \"b\"\n"))
	sysfs := fwCfgTree(t, []byte("[settings]\nmotd = \"fw_cfg\"\n[settings.network]\nhostname = \"from-fw-cfg\"\n"))
	iso := makeISO(t, isoOptions{label: "GANTRY-UD", rockRidge: true}, map[string][]byte{"user-data.toml": []byte("[settings.updates]\nseed = 42\n")})
	imds := imdstest.Start(t, imdstest.Options{UserData: []byte("[settings.ntp]\ntime-servers = [\"imds.example\"]\n")})

	// Invalid user data: exit 1, provider, source, line and key named, nothing sent.
	bad := writeFile(t, dir, "bad.toml", []byte("[settings]\nmotd = \"ok\"\n[settings.updates]\nseed = \"x\"\n"))
	r := runCommand(t, bin, append(base, "--variant", "metal-dev", "--user-data-file", a, "--user-data-file", bad)...)
	if r.code != 1 || !strings.Contains(r.stderr, "early-boot-config: invalid user data; nothing was sent: provider file: "+bad+`:4: settings.updates.seed: expected an integer 0-2047, got the string "x"`) {
		t.Fatalf("bad user data: %+v", r)
	}
	if got := n.launchTx(t); got != "{}" {
		t.Fatalf("gantry-launch after a refused run = %s", got)
	}

	// Usage errors exit 2.
	for _, args := range [][]string{{"--imds", "--user-data-file", a}, {"--no-such-flag"}, {"extra-arg"}, {"--log-level", "loud"}} {
		if r := runCommand(t, bin, append(base, args...)...); r.code != 2 || !strings.Contains(r.stderr, "Usage:") {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("marker written by a failed run")
	}

	// Providers apply in command-line order; the variant comes from the API.
	r = runCommand(t, bin, append(base, "--user-data-file", a, "--fw-cfg-sysfs", sysfs, "--config-disk", iso,
		"--imds-url", imds.URL, "--user-data-file", b, "--user-data-file", filepath.Join(dir, "missing.toml"))...)
	if r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	want := `{"motd":"b","network":{"hostname":"from-fw-cfg"},"ntp":{"time-servers":["imds.example"]},"updates":{"seed":42}}`
	if got := n.launchTx(t); got != want {
		t.Fatalf("gantry-launch:\n got %s\nwant %s", got, want)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("marker: %v", err)
	}

	// A second run is a no-op, whatever the providers say now.
	r = runCommand(t, bin, append(base, "--user-data-file", bad)...)
	if r.code != 0 || !strings.Contains(r.stderr, "nothing to do") {
		t.Fatalf("second run: %+v", r)
	}
	if got := n.launchTx(t); got != want {
		t.Fatalf("gantry-launch changed by the second run: %s", got)
	}

	// A variant the model does not know is an error.
	r = runCommand(t, bin, "--socket-path", n.socket, "--marker", filepath.Join(dir, "other-marker"), "--variant", "nope",
		"--user-data-file", a)
	if r.code != 1 || !strings.Contains(r.stderr, `unknown variant "nope"`) {
		t.Fatalf("unknown variant: %+v", r)
	}

	// --help documents the node's providers.
	r = runCommand(t, bin, "--help")
	for _, s := range []string{"/local/user-data-defaults.toml", "/var/lib/gantry/user-data.toml", "qemu_fw_cfg",
		"/dev/disk/by-label/GANTRY-UD", "/local/user-data-overrides.toml", "--imds-url", "--user-data-file"} {
		if r.code != 0 || !strings.Contains(r.stdout, s) {
			t.Fatalf("--help lacks %q: %+v", s, r)
		}
	}
}
