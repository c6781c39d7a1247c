package imagebuild

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// InitCommand is the initramfs's PID 1, built with the other commands but
// put into the initramfs, not the root.
const InitCommand = "gantry-init"

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
			what := "gantry.commands names it"
			if n == InitCommand {
				what = "the initramfs needs it"
			}
			return "", fmt.Errorf("build Gantry commands: no Go package cmd/%s in %s (%s)", n, source, what)
		}
		pkgs[i] = "./cmd/" + n
	}
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + goarch, "GOFLAGS=-mod=readonly", "GOTOOLCHAIN=local",
		"GOEXPERIMENT=", "GOAMD64=v1", "GOARM64=v8.0"}
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
