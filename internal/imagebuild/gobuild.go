package imagebuild

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/gantry-os/gantry/internal/boot/multicall"
)

// InitCommand is the initramfs's PID 1, built with the node binary but put
// into the initramfs, not the root.
const InitCommand = "gantry-init"

// NodeBinary is the multi-call binary (cmd/gantry-node) that holds every
// Gantry command of the root. It is installed as /usr/bin/gantry-node, and
// each name of the variant's gantry.commands is a link to it.
const NodeBinary = "gantry-node"

// goEnv is the environment of every go command of the build: static,
// module-readonly, the local toolchain, baseline instruction sets.
func goEnv(goarch string) []string {
	return []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + goarch, "GOFLAGS=-mod=readonly", "GOTOOLCHAIN=local",
		"GOEXPERIMENT=", "GOAMD64=v1", "GOARM64=v8.0"}
}

// goBuild builds cmd/<name> for each name into outDir: static
// (CGO_ENABLED=0), with no paths, VCS stamp or build ID in the binary, for
// GOOS=linux and goarch. It returns the toolchain's version.
func goBuild(ctx context.Context, source, goarch, outDir string, names []string) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build Gantry commands: no go on PATH")
	}
	pkgs := make([]string, len(names))
	for i, n := range names {
		matches, _ := filepath.Glob(filepath.Join(source, "cmd", n, "*.go"))
		if len(matches) == 0 {
			what := "the root's commands link to it"
			if n == InitCommand {
				what = "the initramfs needs it"
			}
			return "", fmt.Errorf("build Gantry commands: no Go package cmd/%s in %s (%s)", n, source, what)
		}
		pkgs[i] = "./cmd/" + n
	}
	env := goEnv(goarch)
	c := command{
		name: gobin,
		args: append([]string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", outDir + string(os.PathSeparator)}, pkgs...),
		dir:  source,
		env:  env,
	}
	if _, err := c.run(ctx); err != nil {
		return "", fmt.Errorf("build Gantry commands: %w", err)
	}
	for _, n := range names {
		if err := checkStatic(filepath.Join(outDir, n)); err != nil {
			return "", fmt.Errorf("build Gantry commands: %w", err)
		}
	}
	out, err := command{name: gobin, args: []string{"env", "GOVERSION"}, dir: source, env: env}.run(ctx)
	if err != nil {
		return "", fmt.Errorf("build Gantry commands: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// nodeCommands returns the commands of the gantry-node binary in binDir,
// as its --list prints them. A binary for another architecture than the
// host's cannot run here, so a host build of the same source answers.
func nodeCommands(ctx context.Context, source, goarch, binDir string) ([]string, error) {
	c := command{name: filepath.Join(binDir, NodeBinary), args: []string{multicall.ListFlag}}
	if goarch != runtime.GOARCH || runtime.GOOS != "linux" {
		gobin, err := exec.LookPath("go")
		if err != nil {
			return nil, fmt.Errorf("list %s's commands: no go on PATH", NodeBinary)
		}
		c = command{name: gobin, args: []string{"run", "-trimpath", "./cmd/" + NodeBinary, multicall.ListFlag}, dir: source,
			env: append(goEnv(runtime.GOARCH), "GOOS="+runtime.GOOS)}
	}
	out, err := c.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("list %s's commands: %w", NodeBinary, err)
	}
	names := strings.Fields(string(out))
	if len(names) == 0 {
		return nil, fmt.Errorf("list %s's commands: %s printed none", NodeBinary, c.String())
	}
	return names, nil
}

// checkNodeCommands fails when the variant names a command that the node
// binary does not have, naming the variant file and every such command.
func checkNodeCommands(v *Variant, have []string) error {
	var missing []string
	for _, c := range v.Gantry.Commands {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s: gantry.commands names %s, which %s does not have (it has %s); add it to cmd/%s's table or remove it from the variant",
		filepath.Join(v.Dir, VariantFile), strings.Join(missing, ", "), NodeBinary, strings.Join(have, ", "), NodeBinary)
}

// checkStatic fails unless file is a statically linked ELF executable (no
// program interpreter, no shared libraries).
func checkStatic(file string) error {
	f, err := elf.Open(file)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(file), err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (it has a program interpreter)", filepath.Base(file))
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		return fmt.Errorf("%s needs shared libraries %v", filepath.Base(file), libs)
	}
	return nil
}
