package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RefNameAnnotation names an image of an OCI layout (NAME:TAG).
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// Published is one image PublishLayouts pushed.
type Published struct {
	// Layout is the OCI layout it came from.
	Layout string
	// Ref is where it is now: HOST/PREFIX/NAME:TAG.
	Ref string
	// Digest is its manifest digest.
	Digest string
}

// PublishLayouts pushes the images of every OCI layout under dir (each
// <dir>/<name>/oci, as gantry container build writes them) to the
// registry at host (plain HTTP: a loopback registry), as
// host/prefix/<ref name>, the ref name being the layout's NAME:TAG
// annotation. A dir that does not exist publishes nothing. An image
// without a ref name is an error: its tag would be a guess.
func PublishLayouts(ctx context.Context, dir, host, prefix string) ([]Published, error) {
	layouts, err := filepath.Glob(filepath.Join(dir, "*", "oci", "index.json"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	sort.Strings(layouts)
	var out []Published
	for _, index := range layouts {
		p, err := publishLayout(ctx, filepath.Dir(index), host, prefix)
		if err != nil {
			return out, err
		}
		out = append(out, p...)
	}
	return out, nil
}

func publishLayout(ctx context.Context, dir, host, prefix string) ([]Published, error) {
	lp, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	var out []Published
	for _, desc := range m.Manifests {
		refName := desc.Annotations[RefNameAnnotation]
		if refName == "" || !strings.Contains(refName, ":") {
			return out, fmt.Errorf("OCI layout %s: image %s has no %s NAME:TAG", dir, desc.Digest, RefNameAnnotation)
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return out, fmt.Errorf("OCI layout %s: %w", dir, err)
		}
		target := strings.Trim(host+"/"+strings.Trim(prefix, "/"), "/") + "/" + refName
		ref, err := name.ParseReference(target, name.Insecure)
		if err != nil {
			return out, fmt.Errorf("OCI layout %s: %w", dir, err)
		}
		if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
			return out, fmt.Errorf("push %s: %w", target, err)
		}
		out = append(out, Published{Layout: dir, Ref: target, Digest: desc.Digest.String()})
	}
	return out, nil
}
