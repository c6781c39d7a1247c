//go:build vm

package qemu

import (
	"fmt"
	"os"
	"testing"

	"github.com/gantry-os/gantry/internal/testsupport"
)

// vmImage is the build directory and disk image the VM tests boot:
// build/metal-dev, or GANTRY_BUILD_DIR. It skips the test in -short mode,
// and without an image or without QEMU (fails it under CI).
func vmImage(t *testing.T) (buildDir, image string) {
	t.Helper()
	return vmImageIn(t, "GANTRY_BUILD_DIR", DefaultBuildDir, "`make image`")
}

// vmK8sImage is the Kubernetes variant's build: build/metal-k8s-1.37, or
// GANTRY_K8S_BUILD_DIR.
func vmK8sImage(t *testing.T) (buildDir, image string) {
	t.Helper()
	return vmImageIn(t, "GANTRY_K8S_BUILD_DIR", "build/metal-k8s-1.37", "`make image-k8s`")
}

func vmImageIn(t *testing.T, env, def, make string) (buildDir, image string) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM")
	}
	buildDir = os.Getenv(env)
	if buildDir == "" {
		buildDir = testsupport.RepoPath(t, def)
	}
	image, err := FindImage(buildDir)
	testsupport.Require(t, err == nil, fmt.Sprintf("no image to boot: %v", err), make+" (make test builds it before the tests), or "+env)
	testsupport.RequireTool(t, DefaultQEMU)
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
