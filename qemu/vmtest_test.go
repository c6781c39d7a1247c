package qemu

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// vmImage is the build directory and disk image the VM tests boot:
// build/metal-dev, or GANTRY_BUILD_DIR. It skips the test in -short mode,
// without an image or without QEMU.
func vmImage(t *testing.T) (buildDir, image string) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM")
	}
	buildDir = os.Getenv("GANTRY_BUILD_DIR")
	if buildDir == "" {
		buildDir = filepath.Join("..", DefaultBuildDir)
	}
	image, err := FindImage(buildDir)
	if err != nil {
		t.Skipf("no image to boot: %v", err)
	}
	if _, err := exec.LookPath(DefaultQEMU); err != nil {
		t.Skipf("%s not installed (apt-get install qemu-system-x86)", DefaultQEMU)
	}
	return buildDir, image
}

// vmRunDir is a run directory for a VM test, removed when the test passes
// and kept (and named in the log) when it fails, with its console.log.
func vmRunDir(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gantry-"+name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("run directory kept: %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}
