package testsupport

import (
	"context"
	"testing"

	"github.com/gantry-os/gantry/internal/devtools/k8stools"
)

// K8sTools returns the tools module's Kubernetes binaries, built into the
// user cache (make test builds them before the tests; a test that finds
// none builds them, about 15 minutes cold). It skips the test in -short
// mode.
func K8sTools(t *testing.T) *k8stools.Tools {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the Kubernetes binaries (gantry k8s-tools)")
	}
	tl, err := k8stools.Ensure(context.Background(), k8stools.Options{Source: RepoRoot(t)})
	if err != nil {
		t.Fatal(err)
	}
	return tl
}
