// Package preload imports the images an OS image carries (OCI image
// layouts under /usr/share/gantry/images, such as Gantry's pause image)
// into a containerd namespace and unpacks them, so that the kubelet finds
// its pod sandbox image without a pull at boot.
package preload

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	client "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
)

// Options configure Import.
type Options struct {
	// Dir holds one OCI image layout per folder.
	Dir string
	// Prefix goes before each image's ref name (gantry-pause:v0.1.0 →
	// ghcr.io/gantry-os/gantry-pause:v0.1.0).
	Prefix string
	// Snapshotter unpacks the images (default overlayfs).
	Snapshotter string
}

// Import imports and unpacks every layout in o.Dir into the client's
// namespace and returns the images' names. A missing folder is no image.
func Import(ctx context.Context, c *client.Client, o Options) ([]string, error) {
	if o.Snapshotter == "" {
		o.Snapshotter = "overlayfs"
	}
	ents, err := os.ReadDir(o.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("preload: %w", err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		layout := filepath.Join(o.Dir, e.Name())
		imgs, err := importLayout(ctx, c, layout, o.Prefix)
		if err != nil {
			return names, fmt.Errorf("preload %s: %w", layout, err)
		}
		for _, img := range imgs {
			i := client.NewImage(c, img)
			if err := i.Unpack(ctx, o.Snapshotter); err != nil {
				return names, fmt.Errorf("preload %s: unpack %s: %w", layout, img.Name, err)
			}
			names = append(names, img.Name)
		}
	}
	return names, nil
}

// importLayout streams the layout folder as an OCI archive into
// containerd's import.
func importLayout(ctx context.Context, c *client.Client, layout, prefix string) ([]images.Image, error) {
	if err := checkLayout(layout); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarDir(pw, layout)) }()
	defer pr.Close()
	imgs, err := c.Import(ctx, pr, client.WithImageRefTranslator(func(ref string) string {
		if prefix == "" || ref == "" {
			return ref
		}
		return strings.TrimSuffix(prefix, "/") + "/" + ref
	}), client.WithSkipDigestRef(func(string) bool { return true }))
	if err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		return nil, errors.New("no image with a ref name (org.opencontainers.image.ref.name) in index.json")
	}
	return imgs, nil
}

// checkLayout checks that the folder is an OCI image layout.
func checkLayout(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if err != nil {
		return fmt.Errorf("not an OCI image layout: %w", err)
	}
	var l struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(b, &l); err != nil || l.Version == "" {
		return fmt.Errorf("not an OCI image layout: oci-layout: %q", b)
	}
	return nil
}

// tarDir writes dir's regular files as a tar stream, in name order.
func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: st.Size(), Typeflag: tar.TypeReg})
		}
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		f.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}
