package imagebuild

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// defaultPath is the image's PATH unless its config sets one.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// gantry builds the image's Gantry commands into /usr/bin, copies the
// image's files over the root, removes what the definition says and adds
// the minimal account files an image without base-passwd's scripts lacks.
func (b *containerBuilder) gantry(ctx context.Context) (string, error) {
	var parts []string
	if len(b.spec.Commands) > 0 {
		goarch, _ := debArch(b.spec.Arch)
		binDir := filepath.Join(b.work, "bin")
		gv, err := goBuild(ctx, b.source, goarch, binDir, b.spec.Commands)
		if err != nil {
			return "", err
		}
		for _, n := range b.spec.Commands {
			if err := b.st.copyIn(filepath.Join(binDir, n), "usr/bin/"+n, 0o755); err != nil {
				return "", fmt.Errorf("install %s: %w", n, err)
			}
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", strings.Join(b.spec.Commands, ", "), gv))
	}
	if b.spec.Files != "" {
		if err := copyTreeIn(b.st, b.spec.Files, "", func(string) bool { return true }); err != nil {
			return "", fmt.Errorf("files: %w", err)
		}
		parts = append(parts, "files from "+filepath.Base(b.spec.Files))
	}
	for _, pat := range b.spec.Remove {
		matches, err := filepath.Glob(b.st.abs(strings.TrimPrefix(pat, "/")))
		if err != nil {
			return "", fmt.Errorf("remove %q: %w", pat, err)
		}
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return "", fmt.Errorf("remove %s: %w", pat, err)
			}
		}
	}
	for _, f := range []struct{ rel, body string }{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"},
		{"etc/group", "root:x:0:\nnogroup:x:65534:\n"},
	} {
		if !b.st.exists(f.rel) {
			if err := b.st.mkdirAll(filepath.Dir(f.rel), 0o755); err != nil {
				return "", err
			}
			if err := b.st.writeFile(f.rel, []byte(f.body), 0o644); err != nil {
				return "", err
			}
		}
	}
	if err := b.st.finish(); err != nil {
		return "", err
	}
	if len(parts) == 0 {
		return "none", nil
	}
	return strings.Join(parts, "; "), nil
}

// layer writes the root as one tar with every entry at the epoch, owned as
// on disk, in name order, hard links as links.
func (b *containerBuilder) layer(context.Context) (string, error) {
	b.tarPath = filepath.Join(b.work, "layer.tar")
	f, err := os.Create(b.tarPath)
	if err != nil {
		return "", fmt.Errorf("layer: %w", err)
	}
	defer f.Close()
	n, err := writeTree(f, b.st.dir, b.epoch)
	if err != nil {
		return "", fmt.Errorf("layer: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("layer: %w", err)
	}
	b.res.Files = n
	return fmt.Sprintf("%d entries, %s uncompressed", n, mb(fileSize(b.tarPath))), nil
}

// writeTree writes dir as a tar stream and returns the entry count.
func writeTree(w io.Writer, dir string, epoch time.Time) (int, error) {
	tw := tar.NewWriter(w)
	links := map[uint64]string{}
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		target := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, target)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uname, h.Gname = "", ""
		h.ModTime = timeAt(epoch)
		h.AccessTime, h.ChangeTime = timeAt(epoch), timeAt(epoch)
		h.Format = tar.FormatPAX
		h.PAXRecords = nil
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			h.Uid, h.Gid = int(st.Uid), int(st.Gid)
			if fi.Mode().IsRegular() && st.Nlink > 1 {
				if first, ok := links[st.Ino]; ok {
					h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
				} else {
					links[st.Ino] = h.Name
				}
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		n++
		if h.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	return n, tw.Close()
}

// image assembles the OCI image and writes its layout and image.json.
func (b *containerBuilder) image(context.Context) (string, error) {
	img, err := b.ociImage()
	if err != nil {
		return "", err
	}
	dg, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("image: %w", err)
	}
	b.res.Digest = dg.String()
	b.res.Layout = filepath.Join(b.out, "oci")
	if err := os.RemoveAll(b.res.Layout); err != nil {
		return "", err
	}
	lp, err := layout.Write(b.res.Layout, empty.Index)
	if err != nil {
		return "", fmt.Errorf("image layout: %w", err)
	}
	ref := b.spec.Name + ":" + ImageTag(b.res.Version)
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		return "", fmt.Errorf("image layout: %w", err)
	}
	b.img = img
	if err := b.writeResult(); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s, layer %s, in %s", dg, mb(b.res.LayerBytes), b.res.Layout), nil
}

func (b *containerBuilder) ociImage() (v1.Image, error) {
	layer, err := tarball.LayerFromFile(b.tarPath, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	if b.res.LayerBytes, err = layer.Size(); err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	created := v1.Time{Time: b.epoch}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
		History: v1.History{Created: created, CreatedBy: "gantry container build " + b.spec.Name}})
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf = cf.DeepCopy()
	goarch, _ := debArch(b.spec.Arch)
	cf.Architecture, cf.OS, cf.Created = goarch, "linux", created
	c := b.spec.Config
	env := slices.Clone(c.Env)
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		env = append([]string{defaultPath}, env...)
	}
	labels := map[string]string{
		"org.opencontainers.image.title":   b.spec.Name,
		"org.opencontainers.image.version": b.res.Version,
		"org.opencontainers.image.created": b.epoch.Format("2006-01-02T15:04:05Z"),
		"org.opencontainers.image.vendor":  "Gantry",
	}
	for k, v := range c.Labels {
		labels[k] = v
	}
	cf.Config = v1.Config{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: env, WorkingDir: c.WorkingDir, User: c.User, Labels: labels}
	return mutate.ConfigFile(img, cf)
}

func (b *containerBuilder) writeResult() error {
	data, err := json.MarshalIndent(b.res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.out, "image.json"), append(data, '\n'), 0o644)
}

// push sends the image to each --push reference.
func (b *containerBuilder) push(ctx context.Context) (string, error) {
	if len(b.o.Push) == 0 {
		return "not asked", nil
	}
	for _, r := range b.o.Push {
		ref, err := name.ParseReference(r, b.nameOpts(r)...)
		if err != nil {
			return "", fmt.Errorf("push: %q: %w", r, err)
		}
		if err := remote.Write(ref, b.img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return "", fmt.Errorf("push %s: %w", ref, err)
		}
		b.res.Pushed = append(b.res.Pushed, ref.String()+"@"+b.res.Digest)
	}
	if err := b.writeResult(); err != nil {
		return "", err
	}
	return strings.Join(b.res.Pushed, ", "), nil
}

// nameOpts speaks plain HTTP to loopback registries and those named in
// Insecure.
func (b *containerBuilder) nameOpts(ref string) []name.Option {
	host := strings.SplitN(ref, "/", 2)[0]
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) || slices.Contains(b.o.Insecure, host) {
		return []name.Option{name.Insecure}
	}
	return nil
}

func timeAt(epoch time.Time) time.Time { return epoch.UTC() }

// ImageTag is the tag of an image of version v in its OCI layout and in the
// variants' default sources: v with a leading "v" (0.1.0 → v0.1.0), as
// Bottlerocket tags its host containers.
func ImageTag(v string) string {
	if v != "" && v[0] >= '0' && v[0] <= '9' {
		return "v" + v
	}
	return v
}
