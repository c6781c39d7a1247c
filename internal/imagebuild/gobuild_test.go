package imagebuild

import (
	"context"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/pkg/model"
	"github.com/gantry-os/gantry/pkg/version"
)

// TestNodeCommands builds the real gantry-node, asks it for its commands,
// and checks the repository's variants against them; a variant naming a
// command the binary lacks fails with the file and the command.
func TestNodeCommands(t *testing.T) {
	needTools(t, "go")
	ctx := context.Background()
	src := sourceRoot(t)
	bin := t.TempDir()
	if _, err := goBuild(ctx, src, runtime.GOARCH, bin, []string{NodeBinary}); err != nil {
		t.Fatal(err)
	}
	have, err := nodeCommands(ctx, src, runtime.GOARCH, bin)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(have) || !slices.Contains(have, "signpost") || !slices.Contains(have, "apiserver") || slices.Contains(have, NodeBinary) {
		t.Errorf("%s --list = %v", NodeBinary, have)
	}

	// For another architecture the binary cannot run here; a host build
	// of the same source answers, with the same list.
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	if other != "" {
		got, err := nodeCommands(ctx, src, other, t.TempDir())
		if err != nil || !slices.Equal(got, have) {
			t.Errorf("nodeCommands for %s = %v, %v; want %v", other, got, err, have)
		}
	}

	for name := range model.BuiltinVariants() {
		v, err := LoadVariant(filepath.Join(src, "variants", name), version.Version)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkNodeCommands(v, have); err != nil {
			t.Errorf("variant %s: %v", name, err)
		}
	}

	v, err := ParseVariant([]byte(strings.Replace(minimalVariant, `commands = ["apiserver"]`, `commands = ["apiserver", "power-knob", "signpost"]`, 1)), testVariantFile(t))
	if err != nil {
		t.Fatal(err)
	}
	v.Dir = "/src/variants/custom-dev"
	err = checkNodeCommands(v, have)
	want := "/src/variants/custom-dev/variant.toml: gantry.commands names power-knob, which gantry-node does not have"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("unknown command: %v, want %q", err, want)
	}

	if _, err := goBuild(ctx, src, runtime.GOARCH, t.TempDir(), []string{"no-such-command"}); err == nil ||
		!strings.Contains(err.Error(), "no Go package cmd/no-such-command") {
		t.Errorf("goBuild of a missing command: %v", err)
	}
}
