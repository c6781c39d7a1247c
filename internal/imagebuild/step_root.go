package imagebuild

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"path"
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
	if err == nil && len(v.Images.Preload) > 0 {
		b.preloaded, err = b.preloadImages(ctx)
	}
	if err == nil {
		b.units, err = installUnits(b.st, v, []string{filepath.Join(b.in.source, "variants", "shared", "units"), filepath.Join(v.Dir, "units")})
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d users, %d groups, %d Gantry units, %d unit links, %d tools, %d images", len(acc.users), len(acc.groups),
		len(b.units.installed), b.units.links, len(b.installedTools), len(b.preloaded)), nil
}

// PreloadedImage is a container image carried in the root.
type PreloadedImage struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Digest string `json:"digest"`
}

// PreloadDir is where the root carries its container images, one OCI
// image layout per folder.
const PreloadDir = "usr/share/gantry/images"

// preloadImages builds the variant's [images] preload from the source
// tree's containers/ with the build's epoch and copies each OCI layout into
// the root. The cache's lock is released by then (after the fetch), and
// each container build takes it in turn.
func (b *builder) preloadImages(ctx context.Context) ([]PreloadedImage, error) {
	var out []PreloadedImage
	epoch := b.in.epoch
	for _, name := range b.v.Images.Preload {
		dir := filepath.Join(b.in.source, "containers", name)
		res, err := BuildContainer(ctx, ContainerOptions{Dir: dir, Source: b.in.source, Out: filepath.Join(b.work, "images", name),
			CacheDir: b.in.cacheDir, Epoch: &epoch, Version: b.v.Version})
		if err != nil {
			return nil, fmt.Errorf("images.preload %s: %w", name, err)
		}
		rel := path.Join(PreloadDir, name)
		err = filepath.WalkDir(res.Layout, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			r, _ := filepath.Rel(res.Layout, p)
			target := path.Join(rel, filepath.ToSlash(r))
			if d.IsDir() {
				return b.st.mkdirAll(target, 0o755)
			}
			return b.st.copyIn(p, target, 0o644)
		})
		if err != nil {
			return nil, fmt.Errorf("images.preload %s: %w", name, err)
		}
		out = append(out, PreloadedImage{Name: res.Name + ":" + ImageTag(res.Version), Path: "/" + rel, Digest: res.Digest})
	}
	return out, nil
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
