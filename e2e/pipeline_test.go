package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// node is a Gantry node made of the real binaries, unprivileged: its files
// go under root and its restart programs are logging shims there.
type node struct {
	t         *testing.T
	bin, dir  string
	root      string
	templates string
	socket    string
	apiserver *exec.Cmd
}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// builtBin is where TestMain built every command, once per test binary run.
var builtBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gantry-e2e-bin-")
	if err != nil {
		panic(err)
	}
	builtBin = filepath.Join(dir, "bin")
	cmd := exec.Command("go", "build", "-o", builtBin+"/", "./cmd/...")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic(fmt.Sprintf("go build ./cmd/...: %v\n%s", err, out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildAll returns the directory of the commands TestMain built.
func buildAll(t *testing.T) string {
	t.Helper()
	return builtBin
}

const systemctlShim = `#!/bin/sh
# Stands in for systemctl under the test root: logs what it was asked.
echo "$* [$CHANGED_SETTINGS]" >> "$GANTRY_ROOT/restarts.log"
if [ -e "$GANTRY_ROOT/fail-$2" ]; then echo "unit $2 failed to start" >&2; exit 1; fi
`

// netdogShim runs the real netdog on the test root for resolv.conf, and
// logs set-hostname (which would rename the test machine).
const netdogShim = `#!/bin/sh
echo "netdog $* [$CHANGED_SETTINGS]" >> "$GANTRY_ROOT/restarts.log"
if [ "$1" = set-hostname ]; then exit 0; fi
exec %s --root "$GANTRY_ROOT" --socket-path %s "$@"
`

// hostContainersShim stands in for the host-containers restart program,
// which starts units through systemd's D-Bus: it logs the settings it was
// told changed.
const hostContainersShim = `#!/bin/sh
echo "host-containers $* [$CHANGED_SETTINGS]" >> "$GANTRY_ROOT/restarts.log"
`

func newNode(t *testing.T, bin string) *node { return newNodeWith(t, bin) }

// newNodeWith starts a node whose apiserver gets extra flags.
func newNodeWith(t *testing.T, bin string, apiserverArgs ...string) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{t: t, bin: bin, dir: dir, root: filepath.Join(dir, "root"), socket: filepath.Join(dir, "api.sock"),
		templates: filepath.Join(dir, "templates")}
	// A private copy of the templates, so a test can break one.
	src := filepath.Join(repoRoot(t), "variants", "metal-dev", "templates")
	os.MkdirAll(n.templates, 0o755)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(src, e.Name()))
		os.WriteFile(filepath.Join(n.templates, e.Name()), b, 0o644)
	}
	os.MkdirAll(filepath.Join(n.root, "usr", "bin"), 0o755)
	os.WriteFile(filepath.Join(n.root, "usr", "bin", "systemctl"), []byte(systemctlShim), 0o755)
	os.WriteFile(filepath.Join(n.root, "usr", "bin", "host-containers"), []byte(hostContainersShim), 0o755)
	os.WriteFile(filepath.Join(n.root, "usr", "bin", "netdog"), []byte(fmt.Sprintf(netdogShim, filepath.Join(bin, "netdog"), n.socket)), 0o755)
	os.WriteFile(filepath.Join(dir, "os-release"), []byte("NAME=Gantry\nPRETTY_NAME=\"Gantry 1.0.0\"\nVARIANT_ID=metal-dev\nVERSION_ID=1.0.0\nBUILD_ID=e2e\n"), 0o644)
	n.run("storewolf", "--data-store-base-path", filepath.Join(dir, "ds"), "--defaults-dir",
		filepath.Join(repoRoot(t), "variants", "metal-dev", "defaults.d"), "--os-release", filepath.Join(dir, "os-release"))
	n.startAPIServer(apiserverArgs...)
	return n
}

func (n *node) startAPIServer(extra ...string) {
	n.t.Helper()
	logf, _ := os.Create(filepath.Join(n.dir, "apiserver.log"))
	cmd := exec.Command(filepath.Join(n.bin, "apiserver"), "--datastore-path", filepath.Join(n.dir, "ds", "current"),
		"--socket-path", n.socket, "--os-release", filepath.Join(n.dir, "os-release"),
		"--root", n.root, "--templates-dir", n.templates, "--service-runner", "exec",
		"--updates-status-dir", filepath.Join(n.dir, "updates"), "--root-json", filepath.Join(n.dir, "no-root.json"))
	cmd.Args = append(cmd.Args, extra...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.apiserver = cmd
	n.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	for i := 0; i < 500; i++ {
		if c, err := net.Dial("unix", n.socket); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(n.dir, "apiserver.log"))
	n.t.Fatalf("apiserver did not start:\n%s", log)
}

// exec runs one of the binaries and returns its exit code, stdout, stderr.
func (n *node) exec(name string, args ...string) (int, string, string) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(n.bin, name), args...)
	cmd.Env = append(os.Environ(), "PATH="+n.bin+":"+os.Getenv("PATH"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		n.t.Fatalf("%s: %v", name, err)
	}
	return code, out.String(), errb.String()
}

func (n *node) run(name string, args ...string) string {
	n.t.Helper()
	code, out, errs := n.exec(name, args...)
	if code != 0 {
		n.t.Fatalf("%s %v: exit %d\n%s", name, args, code, errs)
	}
	return out
}

func (n *node) api(args ...string) string {
	n.t.Helper()
	return n.run("apiclient", append([]string{"--socket-path", n.socket}, args...)...)
}

func (n *node) file(path string) string {
	b, err := os.ReadFile(filepath.Join(n.root, path))
	if err != nil {
		return "<missing>"
	}
	return string(b)
}

func (n *node) restarts() string {
	p := filepath.Join(n.root, "restarts.log")
	b, _ := os.ReadFile(p)
	os.Remove(p)
	return string(b)
}

// boot runs the first-boot pipeline in Bottlerocket's order.
func (n *node) boot(userData string) {
	n.t.Helper()
	ud := filepath.Join(n.dir, "user-data.toml")
	os.WriteFile(ud, []byte(userData), 0o644)
	s := "--socket-path"
	n.run("early-boot-config", s, n.socket, "--marker", filepath.Join(n.dir, "ebc.ran"), "--user-data-file", ud,
		"--os-release", filepath.Join(n.dir, "os-release"))
	n.run("settings-committer", s, n.socket)
	n.run("sundog", s, n.socket)
	n.run("settings-committer", s, n.socket)
	n.run("settings-applier", "--all", s, n.socket, "--root", n.root, "--templates-dir", n.templates, "--service-runner", "exec")
}

const userData = `
[settings]
motd = "Hello from user data"

[settings.kernel.sysctl]
"vm.max_map_count" = "262144"

[settings.ntp]
time-servers = ["0.pool.ntp.org", "10.0.0.5"]

[settings.host-containers.admin]
source = "registry.example/admin:v1"
enabled = true
superpowered = true
`

// ageFiles sets every rendered file's modification time into the past, so a
// later rewrite shows.
func (n *node) ageFiles() map[string]time.Time {
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	out := map[string]time.Time{}
	filepath.Walk(filepath.Join(n.root, "etc"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			os.Chtimes(p, old, old)
			out[strings.TrimPrefix(p, n.root)] = old
		}
		return nil
	})
	return out
}

func (n *node) rewritten(aged map[string]time.Time) []string {
	var out []string
	for p, t := range aged {
		fi, err := os.Stat(filepath.Join(n.root, p))
		if err != nil || !fi.ModTime().Equal(t) {
			out = append(out, p)
		}
	}
	return out
}

func TestBootAndRuntimePipeline(t *testing.T) {
	n := newNode(t, buildAll(t))
	n.boot(userData)

	// First boot: every file rendered from defaults, user data and generators.
	if got := n.file("/etc/motd"); got != "Hello from user data\n" {
		t.Fatalf("/etc/motd = %q", got)
	}
	if got := n.file("/etc/sysctl.d/90-gantry.conf"); !strings.Contains(got, "vm.max_map_count = 262144\n") {
		t.Fatalf("sysctl.d = %q", got)
	}
	if got := n.file("/etc/chrony/chrony.conf"); !strings.Contains(got, "server 0.pool.ntp.org iburst\nserver 10.0.0.5 iburst\n") {
		t.Fatalf("chrony.conf = %q", got)
	}
	hostname := strings.Trim(strings.TrimSpace(n.api("-u", "/settings?keys=settings.network.hostname")), "{}")
	if !strings.Contains(hostname, `"hostname":"`) {
		t.Fatalf("sundog did not generate a hostname: %s", hostname)
	}
	if got := n.file("/etc/hostname"); got == "<missing>" || !strings.Contains(hostname, strings.TrimSpace(got)) {
		t.Fatalf("/etc/hostname = %q, settings say %s", got, hostname)
	}
	if seed := n.api("-u", "/settings?keys=settings.updates.seed"); !strings.Contains(seed, `"seed":`) {
		t.Fatalf("no generated seed: %s", seed)
	}
	if got := n.file("/etc/host-containers/admin.env"); !strings.Contains(got, `CTR_SOURCE="registry.example/admin:v1"`) {
		t.Fatalf("admin.env = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(n.root, "etc/host-containers/admin.env")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.env mode: %v %v", fi, err)
	}
	boot := n.restarts()
	for _, want := range []string{"try-reload-or-restart chrony.service []", "restart systemd-sysctl.service []", "try-restart containerd.service []"} {
		if !strings.Contains(boot, want) {
			t.Errorf("boot restarts lack %q:\n%s", want, boot)
		}
	}
	// early-boot-config runs once per node.
	if _, _, errs := n.exec("early-boot-config", "--socket-path", n.socket, "--marker", filepath.Join(n.dir, "ebc.ran"),
		"--user-data-file", filepath.Join(n.dir, "nonexistent.toml")); strings.Contains(errs, "error") {
		t.Fatalf("second early-boot-config run: %s", errs)
	}

	// Runtime: a change re-renders exactly the affected files and restarts
	// exactly the affected services.
	aged := n.ageFiles()
	n.api("set", "motd=changed at runtime")
	if got := n.rewritten(aged); strings.Join(got, ",") != "/etc/motd" {
		t.Fatalf("a motd change rewrote %v", got)
	}
	if n.file("/etc/motd") != "changed at runtime\n" {
		t.Fatalf("/etc/motd = %q", n.file("/etc/motd"))
	}
	if r := n.restarts(); r != "" {
		t.Fatalf("a motd change restarted %q", r)
	}
	// A host container change re-renders the host containers' files and
	// runs the host-containers program with the changed settings, from
	// which it restarts only that container.
	aged = n.ageFiles()
	n.api("set", "host-containers.control.enabled=true")
	if got := n.rewritten(aged); !slices.Contains(got, "/etc/host-containers/control.env") {
		t.Fatalf("a control container change rewrote %v", got)
	}
	if r := n.restarts(); !strings.Contains(r, "host-containers  [settings.host-containers.control.enabled]") {
		t.Fatalf("a control container change ran %q", r)
	}
	aged = n.ageFiles()
	n.api("set", `kernel.sysctl."net.ipv4.ip_forward"=1`)
	if got := n.rewritten(aged); strings.Join(got, ",") != "/etc/sysctl.d/90-gantry.conf" {
		t.Fatalf("a sysctl change rewrote %v", got)
	}
	if r := n.restarts(); r != "restart systemd-sysctl.service [settings.kernel.sysctl.\"net.ipv4.ip_forward\"]\n" {
		t.Fatalf("a sysctl change restarted %q", r)
	}

	aged = n.ageFiles()
	n.api("set", `dns.name-servers=["10.0.2.3"]`, `dns.search-list=["corp.example"]`)
	if got := n.rewritten(aged); strings.Join(got, ",") != "/etc/resolv.conf" {
		t.Fatalf("a dns change rewrote %v", got)
	}
	if got := n.file("/etc/resolv.conf"); !strings.Contains(got, "\nnameserver 10.0.2.3\nsearch corp.example\n") {
		t.Fatalf("/etc/resolv.conf = %q", got)
	}
	if r := n.restarts(); r != "netdog write-resolv-conf [settings.dns.name-servers settings.dns.search-list]\n" {
		t.Fatalf("a dns change restarted %q", r)
	}
	aged = n.ageFiles()
	n.api("set", `network.hosts=[["10.0.0.10", ["registry.internal"]]]`)
	if got := n.rewritten(aged); strings.Join(got, ",") != "/etc/hosts" {
		t.Fatalf("a hosts change rewrote %v", got)
	}
	if got := n.file("/etc/hosts"); !strings.Contains(got, "\n10.0.0.10 registry.internal\n") {
		t.Fatalf("/etc/hosts = %q", got)
	}
	if r := n.restarts(); r != "" {
		t.Fatalf("a hosts change restarted %q", r)
	}

	// A broken template and a failing restart reach the caller; the
	// settings stay committed.
	os.WriteFile(filepath.Join(n.templates, "motd"), []byte("{{ .settings.no-such }}\n"), 0o644)
	code, _, errs := n.exec("apiclient", "--socket-path", n.socket, "set", "motd=broken")
	if code != 1 || !strings.Contains(errs, "settings were committed, but applying them failed") || !strings.Contains(errs, "file motd (/etc/motd)") {
		t.Fatalf("broken template: exit %d: %s", code, errs)
	}
	if got := n.api("-u", "/settings?keys=settings.motd"); strings.TrimSpace(got) != `{"motd":"broken"}` {
		t.Fatalf("motd after a failed apply = %s", got)
	}
	os.WriteFile(filepath.Join(n.root, "fail-systemd-sysctl.service"), nil, 0o644)
	code, _, errs = n.exec("apiclient", "--socket-path", n.socket, "set", `kernel.sysctl."vm.swappiness"=10`)
	if code != 1 || !strings.Contains(errs, `service sysctl: restart command "/usr/bin/systemctl restart systemd-sysctl.service"`) ||
		!strings.Contains(errs, "unit systemd-sysctl.service failed to start") {
		t.Fatalf("failing restart: exit %d: %s", code, errs)
	}
	if !strings.Contains(n.file("/etc/sysctl.d/90-gantry.conf"), "vm.swappiness = 10") {
		t.Fatal("the sysctl file was not written before the failing restart")
	}

	// The dry run shows the diff and changes nothing.
	os.Remove(filepath.Join(n.root, "fail-systemd-sysctl.service"))
	n.restarts()
	aged = n.ageFiles()
	out := n.api("set", "--dry-run", `ntp.time-servers=["time.example"]`)
	if !strings.Contains(out, "-server 0.pool.ntp.org iburst") || !strings.Contains(out, "+server time.example iburst") ||
		!strings.Contains(out, "would restart ntp: /usr/bin/systemctl try-reload-or-restart chrony.service") {
		t.Fatalf("dry run output:\n%s", out)
	}
	if got := n.rewritten(aged); len(got) != 0 || n.restarts() != "" {
		t.Fatalf("dry run changed the node: %v", got)
	}
	if txs := n.api("-u", "/tx/list"); strings.TrimSpace(txs) != "[]" {
		t.Fatalf("dry run left a transaction: %s", txs)
	}
}

func TestInvalidUserDataDoesNotHalfApply(t *testing.T) {
	n := newNode(t, buildAll(t))
	ud := filepath.Join(n.dir, "user-data.toml")
	os.WriteFile(ud, []byte("[settings]\nmotd = \"fine\"\n\n[settings.updates]\nseed = \"lots\"\n"), 0o644)
	code, _, errs := n.exec("early-boot-config", "--socket-path", n.socket, "--marker", filepath.Join(n.dir, "ebc.ran"),
		"--user-data-file", ud, "--os-release", filepath.Join(n.dir, "os-release"))
	if code == 0 || !strings.Contains(errs, "settings.updates.seed") || !strings.Contains(errs, ":5") {
		t.Fatalf("invalid user data: exit %d: %s", code, errs)
	}
	if got := n.api("-u", "/tx?tx=gantry-launch"); !strings.Contains(got, `"motd":"Welcome to Gantry!"`) {
		t.Fatalf("the launch transaction changed: %s", got)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "ebc.ran")); err == nil {
		t.Fatal("the marker was written after a failure")
	}
}
