package imagebuild

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gantry-os/gantry/internal/devtools/k8stools"
)

// stepConfigureRoot waits for the Gantry commands, then writes the accounts,
// the release and the image's data (rootfs.go), links the commands and
// installs Gantry's units (units.go).
func stepConfigureRoot(ctx context.Context, b *builder) (string, error) {
	if err := b.waitGo(); err != nil {
		return "", err
	}
	tools, err := b.waitTools()
	if err != nil {
		return "", err
	}
	v := b.v
	acc, err := configureRoot(b.st, v, releaseInfo{variant: v.Name, version: v.Version, buildID: b.in.buildID, arch: v.Arch}, b.lock, b.in.rootJSON)
	if err == nil {
		err = installCommands(b.st, b.binDir, v.Gantry.Commands)
	}
	if err == nil && tools != nil {
		b.installedTools, err = installTools(b.st, tools, v.Tools.Install)
	}
	if err == nil {
		b.units, err = installUnits(b.st, v, []string{filepath.Join(b.in.source, "variants", "shared", "units"), filepath.Join(v.Dir, "units")})
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d users, %d groups, %d Gantry units, %d unit links, %d tools", len(acc.users), len(acc.groups),
		len(b.units.installed), b.units.links, len(b.installedTools)), nil
}

// InstalledTool is a tools binary in the root.
type InstalledTool struct {
	Path   string `json:"path"`
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// installTools copies the tools binaries into the root at their paths, in
// path order.
func installTools(st *stage, t *k8stools.Tools, install map[string]string) ([]InstalledTool, error) {
	var out []InstalledTool
	for _, dst := range slices.Sorted(maps.Keys(install)) {
		name := install[dst]
		src := t.Path(name)
		if src == "" {
			return nil, fmt.Errorf("tools: no binary %q", name)
		}
		rel := strings.TrimPrefix(dst, "/")
		if err := st.mkdirAll(filepath.Dir(rel), 0o755); err != nil {
			return nil, err
		}
		if err := st.copyIn(src, rel, 0o755); err != nil {
			return nil, fmt.Errorf("tools: %s: %w", dst, err)
		}
		out = append(out, InstalledTool{Path: dst, Name: name, SHA256: t.SHA256(name)})
	}
	return out, nil
}
