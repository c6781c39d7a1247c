package testsupport

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// LoopTests skips a test that needs root and loop devices unless
// GANTRY_LOOP_TESTS=1 or under CI, where it always runs (and a missing
// root or loop device fails it).
func LoopTests(t testing.TB) {
	t.Helper()
	if os.Getenv("GANTRY_LOOP_TESTS") != "1" && !InCI() {
		t.Skip("set GANTRY_LOOP_TESTS=1 (needs root and losetup)")
	}
	RequireRoot(t, "loop devices")
	RequireTool(t, "losetup")
}

// LoopDevice attaches a loop device over a new sparse file of size bytes
// and returns its path; it is detached when the test ends.
func LoopDevice(t testing.TB, size int64) string {
	t.Helper()
	backing := filepath.Join(t.TempDir(), "backing.img")
	if err := os.WriteFile(backing, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, size); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", backing).Output()
	if err != nil {
		Missing(t, fmt.Sprintf("losetup --find: %v", err), "loop devices (modprobe loop; a container needs --privileged)")
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "--detach", dev).Run() })
	return dev
}
