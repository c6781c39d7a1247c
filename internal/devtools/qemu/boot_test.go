//go:build vm

package qemu

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/pkg/apiclient"
)

// TestBootImage boots the metal-dev image of an earlier `gantry build`
// (build/metal-dev, or GANTRY_BUILD_DIR) with the real qemu-system-x86_64,
// waits for its API through the host socket, checks that user data from
// fw_cfg arrived, and powers it off with the ACPI power button: the guest's
// power-button service must shut systemd down by itself, well before the
// stop timeout would make Stop quit QEMU. It is skipped when there is no
// image or no QEMU.
func TestBootImage(t *testing.T) {
	bd, _ := vmImage(t)
	ud := filepath.Join(t.TempDir(), "user-data.toml")
	const motd = "hello from TestBootImage"
	os.WriteFile(ud, []byte("[settings]\nmotd = \""+motd+"\"\n"), 0o644)

	dir := vmRunDir(t, "boot")
	// Below go test's default 10-minute limit, so a hung boot fails here
	// with the console rather than as a test-binary panic.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// The stop timeout is generous for TCG; a graceful poweroff takes a
	// fraction of it (see the end).
	n, err := Start(ctx, Options{BuildDir: bd, RunDir: dir, UserData: ud, Fresh: true, StopTimeout: stopTimeout})
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

	// power-button.service watches the ACPI power button (it loaded the
	// button driver and evdev itself: the image has no udev).
	for !strings.Contains(n.Console(), "watching the power button") && ctx.Err() == nil {
		time.Sleep(time.Second)
	}
	if con := n.Console(); !strings.Contains(con, "watching the power button") || !strings.Contains(con, "LNXPWRBN") {
		t.Fatalf("power-button is not watching the ACPI power button:\n%s", tail(con, 40))
	}

	// Stop presses the power button (QMP system_powerdown); the guest must
	// power off by itself, not be quit by Stop after stopTimeout.
	stopped := time.Now()
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(stopped)
	t.Logf("powered off in %v after system_powerdown", took.Round(time.Millisecond))
	con = n.Console()
	if n.StopForced() {
		t.Fatalf("the guest did not power off within %v; Stop quit QEMU. Console:\n%s", stopTimeout, tail(con, 40))
	}
	if err := n.Wait(); err != nil {
		t.Errorf("QEMU after the guest's poweroff: %v", err)
	}
	// power-button's own "power off started" is not required: it reaches
	// the console through journald, which may already be stopping. The
	// press (logged before the request) and the kernel's last line, with
	// the guest exiting QEMU by itself, say the poweroff was clean.
	for _, want := range []string{"power button pressed", "reboot: Power down"} {
		if !strings.Contains(con, want) {
			t.Errorf("console lacks %q:\n%s", want, tail(con, 40))
		}
	}
}

// stopTimeout bounds TestBootImage's graceful poweroff: generous under TCG,
// where systemd's shutdown takes seconds.
const stopTimeout = 2 * time.Minute
