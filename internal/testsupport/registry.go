package testsupport

import (
	"context"
	"os"
	"testing"

	"github.com/gantry-os/gantry/internal/devtools/registry"
)

// StartRegistry starts a real OCI registry (registry.Start: Debian's
// docker-registry) on the host's loopback for the test, its storage in a
// test folder, and stops it at the end. Guests under QEMU's user network
// reach it at 10.0.2.2:Port.
func StartRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	bin := RequireTool(t, registry.DefaultBinary)
	r, err := registry.Start(context.Background(), registry.Options{Binary: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(r.Log); err == nil && len(b) > 0 {
				t.Logf("registry log:\n%s", b)
			}
		}
	})
	return r
}
