//go:build vm

package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/boot/initrd"
	"github.com/gantry-os/gantry/internal/testsupport"
	"github.com/gantry-os/gantry/pkg/apiclient"
)

// kernelTree finds an extracted Debian cloud kernel (boot/vmlinuz-*,
// lib/modules/<release>/): GANTRY_TEST_KERNEL_ROOT, or the cache the initrd
// package's QEMU test fills (GANTRY_TEST_CACHE, else ~/.cache/gantry-test).
func kernelTree(t *testing.T) (vmlinuz, modules string) {
	t.Helper()
	var roots []string
	if r := os.Getenv("GANTRY_TEST_KERNEL_ROOT"); r != "" {
		roots = append(roots, r)
	}
	cache := os.Getenv("GANTRY_TEST_CACHE")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache", "gantry-test")
		}
	}
	if cache != "" {
		m, _ := filepath.Glob(filepath.Join(cache, "kernel", "linux-image-*", "root"))
		roots = append(roots, m...)
	}
	for _, r := range roots {
		k, _ := filepath.Glob(filepath.Join(r, "boot", "vmlinuz-*"))
		mods, _ := filepath.Glob(filepath.Join(r, "lib", "modules", "*"))
		if len(k) == 1 && len(mods) == 1 {
			return k[0], mods[0]
		}
	}
	// A skip even under CI: initrd's TestBootQEMU extracts the kernel (and
	// fails under CI when it cannot), and may run after this package.
	t.Skip("no extracted kernel (run `go test ./initrd -run TestBootQEMU` once, or set GANTRY_TEST_KERNEL_ROOT)")
	return "", ""
}

// TestBridgeInGuest boots a real kernel under QEMU with an initramfs whose
// /init runs the real api-bridge in front of a stand-in API, and talks to
// it through the host socket: module loading from real .ko files,
// rtnetlink in a real guest, QEMU's hostfwd, fw_cfg user data, the host
// forwarder, WaitForAPI and Stop (the stand-in ignores the power button,
// so Stop ends with QMP quit).
func TestBridgeInGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	testsupport.RequireTool(t, DefaultQEMU)
	vmlinuz, modules := kernelTree(t)
	dir := shortDir(t)
	initBin := testsupport.Build(t, filepath.Join(dir, "guestinit"), "./testdata/guestinit", "-trimpath")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	img := filepath.Join(dir, "initrd.img")
	if err := initrd.Build(ctx, initrd.Options{Init: initBin, ModulesDir: modules,
		Modules: []string{"virtio_pci", "virtio_net", "qemu_fw_cfg"}, Out: img, Gzip: true}); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ud := filepath.Join(dir, "user-data.toml")
	os.WriteFile(ud, []byte("[settings]\nmotd = \"through fw_cfg\"\n"), 0o644)

	start := time.Now()
	n, err := Start(ctx, Options{Kernel: vmlinuz, Initrd: img, Image: disk, Cmdline: "panic=-1",
		RunDir: filepath.Join(dir, "run"), UserData: ud, NoReboot: true, StopTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(context.Background())
	if err := n.WaitForAPI(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("API through the bridge after %v (%s)", time.Since(start).Round(time.Millisecond), n.Accel())

	code, body, err := apiclient.New(n.SocketPath()).Do(ctx, "GET", "/os", nil)
	if err != nil || code != 200 {
		t.Fatalf("GET /os: %d %s %v", code, body, err)
	}
	if !strings.Contains(string(body), `motd = \"through fw_cfg\"`) {
		t.Errorf("the guest did not get the user data through fw_cfg: %s", body)
	}
	con := n.Console()
	for _, want := range []string{"api-bridge: modules ready", "virtio_net", "api-bridge: network configured", "interface=eth0"} {
		if !strings.Contains(con, want) {
			t.Errorf("console lacks %q:\n%s", want, tail(con, 30))
		}
	}
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Wait(); err != nil {
		t.Errorf("Wait: %v", err)
	}
}
