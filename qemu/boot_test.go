package qemu

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/apiclient"
)

// TestBootImage boots the metal-dev image of an earlier `gantry build`
// (build/metal-dev, or GANTRY_BUILD_DIR) with the real qemu-system-x86_64,
// waits for its API through the host socket, checks that user data from
// fw_cfg arrived, and powers it off. It is skipped when there is no image
// or no QEMU.
func TestBootImage(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	bd := os.Getenv("GANTRY_BUILD_DIR")
	if bd == "" {
		bd = filepath.Join("..", DefaultBuildDir)
	}
	if _, err := FindImage(bd); err != nil {
		t.Skipf("no image to boot: %v", err)
	}
	if _, err := exec.LookPath(DefaultQEMU); err != nil {
		t.Skipf("%s not installed (apt-get install qemu-system-x86)", DefaultQEMU)
	}
	ud := filepath.Join(t.TempDir(), "user-data.toml")
	const motd = "hello from TestBootImage"
	os.WriteFile(ud, []byte("[settings]\nmotd = \""+motd+"\"\n"), 0o644)

	dir, err := os.MkdirTemp("", "gantry-boot")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("run directory kept: %s", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	// Below go test's default 10-minute limit, so a hung boot fails here
	// with the console rather than as a test-binary panic.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// The guest does not act on the ACPI power button (no udev/logind), so a
	// short stop timeout: the test's disk is thrown away.
	n, err := Start(ctx, Options{BuildDir: bd, RunDir: dir, UserData: ud, Fresh: true, StopTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(context.Background())
	start := time.Now()
	if err := n.WaitForAPI(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("API answered %v after start (%s)", time.Since(start).Round(time.Millisecond), n.Accel())

	c := apiclient.New(n.SocketPath())
	// early-boot-config, sundog and settings-applier may still be running.
	for {
		code, body, err := c.Do(ctx, "GET", "/settings?keys=settings.motd", nil)
		if err == nil && code == 200 && strings.Contains(string(body), motd) {
			break
		}
		con := n.Console()
		if strings.Contains(con, `msg="no user data" provider=fw_cfg`) {
			t.Fatalf("early-boot-config found no user data in fw_cfg: the guest has no /sys/firmware/qemu_fw_cfg "+
				"(the image must load the qemu_fw_cfg module, e.g. in [kernel] initramfs-modules)\nconsole:\n%s", tail(con, 40))
		}
		if ctx.Err() != nil {
			t.Fatalf("user data never arrived: %d %s %v\nconsole:\n%s", code, body, err, tail(con, 60))
		}
		time.Sleep(2 * time.Second)
	}
	code, body, err := c.Do(ctx, "GET", "/os", nil)
	if err != nil || code != 200 {
		t.Fatalf("GET /os: %d %s %v", code, body, err)
	}
	var rel struct {
		VariantID string `json:"variant_id"`
	}
	json.Unmarshal(body, &rel)
	t.Logf("/os: variant %s", rel.VariantID)
	if rel.VariantID != "metal-dev" {
		t.Fatalf("GET /os variant %q", rel.VariantID)
	}

	// The root is the verity device, mounted read-only.
	con := n.Console()
	for _, want := range []string{"dm-verity /dev/dm-", "verity", "(erofs, read-only)", "/etc is a tmpfs filled from"} {
		if !strings.Contains(con, want) {
			t.Errorf("console lacks %q:\n%s", want, tail(con, 60))
		}
	}

	// A setting committed over the bridge is applied by the node.
	for _, step := range []struct{ method, uri, body string }{
		{"PATCH", "/settings?tx=boot-test", `{"kernel": {"sysctl": {"vm.swappiness": "7"}}, "motd": "changed over the bridge"}`},
		{"POST", "/tx/commit_and_apply?tx=boot-test", ""},
	} {
		var b []byte
		if step.body != "" {
			b = []byte(step.body)
		}
		code, body, err := c.Do(ctx, step.method, step.uri, b)
		if err != nil || code/100 != 2 {
			t.Fatalf("%s %s: %d %s %v\nconsole:\n%s", step.method, step.uri, code, body, err, tail(n.Console(), 40))
		}
	}
	code, body, err = c.Do(ctx, "GET", "/settings?keys=settings.motd,settings.kernel.sysctl", nil)
	if err != nil || !strings.Contains(string(body), `"motd":"changed over the bridge"`) || !strings.Contains(string(body), `"vm.swappiness":"7"`) {
		t.Fatalf("settings after commit: %d %s %v", code, body, err)
	}
	// settings-applier rendered the files and restarted systemd-sysctl; the
	// apiserver logs it to the console.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(n.Console(), "applied settings") && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	if !strings.Contains(n.Console(), "applied settings") {
		t.Errorf("no apply in the console:\n%s", tail(n.Console(), 30))
	}

	stopped := time.Now()
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped in %v", time.Since(stopped).Round(time.Millisecond))
}
