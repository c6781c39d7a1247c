package testsupport

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Module is this source tree's module path.
const Module = "github.com/gantry-os/gantry"

// GoBuild builds the package pkg into the file out with the go command (the
// one on PATH, else this test binary's GOROOT's). pkg is a path in this
// module ("cmd/updog"), a full import path, or a folder relative to the
// test's working folder ("./testdata/guestinit"). flags go before -o. The
// binary is static (CGO_ENABLED=0), as the node's are, so it also runs in an
// initramfs.
func GoBuild(ctx context.Context, out, pkg string, flags ...string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	if !strings.HasPrefix(pkg, ".") && !strings.HasPrefix(pkg, Module) {
		pkg = Module + "/" + pkg
	}
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// Build is GoBuild for a test: a failed build fails it, with go's output.
func Build(t TB, out, pkg string, flags ...string) string {
	t.Helper()
	if err := GoBuild(context.Background(), out, pkg, flags...); err != nil {
		t.Fatalf("%v", err)
	}
	return out
}
