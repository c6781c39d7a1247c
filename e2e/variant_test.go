package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/pkg/model"
)

// TestCustomVariantModel runs the node's programs as an out-of-tree variant
// would have them: the image's settings-groups file, not the source tree's
// built-in variants, decides the settings model of storewolf, apiserver and
// early-boot-config.
func TestCustomVariantModel(t *testing.T) {
	bin := buildAll(t)
	dir := t.TempDir()
	groups, err := model.MarshalGroupsFile("acme-edge", []string{"motd", "ntp", "kernel"})
	if err != nil {
		t.Fatal(err)
	}
	gf := filepath.Join(dir, "settings-groups.json")
	os.WriteFile(gf, groups, 0o644)
	osr := filepath.Join(dir, "os-release")
	os.WriteFile(osr, []byte("NAME=Gantry\nVARIANT_ID=acme-edge\nVERSION_ID=1.0.0\nBUILD_ID=e2e\n"), 0o644)
	defaults := filepath.Join(dir, "defaults.d")
	os.MkdirAll(defaults, 0o755)
	os.WriteFile(filepath.Join(defaults, "00.toml"), []byte("[settings]\nmotd = \"acme\"\n\n[settings.ntp]\ntime-servers = [\"10.0.0.1\"]\n"), 0o644)

	n := &node{t: t, bin: bin, dir: dir, root: filepath.Join(dir, "root"), socket: filepath.Join(dir, "api.sock"),
		templates: filepath.Join(dir, "templates")}
	os.MkdirAll(n.templates, 0o755)
	// Defaults with a group the variant lacks are refused, naming it.
	bad := filepath.Join(dir, "bad.d")
	os.MkdirAll(bad, 0o755)
	os.WriteFile(filepath.Join(bad, "00.toml"), []byte("[settings.host-containers.admin]\nenabled = true\n"), 0o644)
	code, _, errs := n.exec("storewolf", "--data-store-base-path", filepath.Join(dir, "bad-ds"), "--defaults-dir", bad,
		"--os-release", osr, "--settings-groups", gf)
	if code == 0 || !strings.Contains(errs, "host-containers") || !strings.Contains(errs, "acme-edge") {
		t.Fatalf("storewolf took host-containers for acme-edge (exit %d):\n%s", code, errs)
	}

	n.run("storewolf", "--data-store-base-path", filepath.Join(dir, "ds"), "--defaults-dir", defaults,
		"--os-release", osr, "--settings-groups", gf)
	n.startAPIServer("--settings-groups", gf)

	if out := n.api("-u", "/os"); !strings.Contains(out, `"variant_id":"acme-edge"`) {
		t.Errorf("GET /os:\n%s", out)
	}
	if out := n.api("-u", "/tx?tx=gantry-launch"); !strings.Contains(out, `"acme"`) || !strings.Contains(out, "10.0.0.1") {
		t.Errorf("defaults not served:\n%s", out)
	}
	code, _, errs = n.exec("apiclient", "--socket-path", n.socket, "set", "host-containers.admin.enabled=true")
	if code == 0 || !strings.Contains(errs, "host-containers") {
		t.Errorf("apiserver took host-containers for acme-edge (exit %d):\n%s", code, errs)
	}
	n.api("set", "--dry-run", "motd=hello")

	// early-boot-config validates user data with the same model.
	ud := filepath.Join(dir, "user-data.toml")
	os.WriteFile(ud, []byte("[settings.host-containers.admin]\nenabled = true\n"), 0o644)
	code, _, errs = n.exec("early-boot-config", "--socket-path", n.socket, "--marker", filepath.Join(dir, "ebc.ran"),
		"--user-data-file", ud, "--os-release", osr, "--settings-groups", gf)
	if code == 0 || !strings.Contains(errs, "host-containers") {
		t.Errorf("early-boot-config took host-containers for acme-edge (exit %d):\n%s", code, errs)
	}
	os.WriteFile(ud, []byte("[settings.kernel.sysctl]\n\"vm.max_map_count\" = \"262144\"\n"), 0o644)
	n.run("early-boot-config", "--socket-path", n.socket, "--marker", filepath.Join(dir, "ebc.ran"),
		"--user-data-file", ud, "--os-release", osr, "--settings-groups", gf)
}
