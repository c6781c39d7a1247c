package registry_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gantry-os/gantry/internal/devtools/registry"
	"github.com/gantry-os/gantry/internal/testsupport"
)

// writeLayout writes <dir>/<image>/oci with one random image annotated
// with refName ("" for none) and returns its digest.
func writeLayout(t *testing.T, dir, image, refName string) string {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := layout.Write(filepath.Join(dir, image, "oci"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	var opts []layout.Option
	if refName != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{registry.RefNameAnnotation: refName}))
	}
	if err := lp.AppendImage(img, opts...); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d.String()
}

// TestPublishLayouts starts the real registry, publishes two layouts under
// a prefix, pulls them back by the published refs, and starts the registry
// again on the same folder: what was pushed is still served.
func TestPublishLayouts(t *testing.T) {
	bin := testsupport.RequireTool(t, registry.DefaultBinary)
	ctx := context.Background()
	dir := t.TempDir()
	reg, err := registry.Start(ctx, registry.Options{Binary: bin, Dir: filepath.Join(dir, "registry")})
	if err != nil {
		t.Fatal(err)
	}
	built := filepath.Join(dir, "containers")
	want := map[string]string{
		reg.Host + "/gantry-os/gantry-admin:v0.1.0":   writeLayout(t, built, "admin", "gantry-admin:v0.1.0"),
		reg.Host + "/gantry-os/gantry-control:v0.1.0": writeLayout(t, built, "control", "gantry-control:v0.1.0"),
	}
	os.MkdirAll(filepath.Join(built, "not-an-image"), 0o755)
	pub, err := registry.PublishLayouts(ctx, built, reg.Host, "gantry-os")
	if err != nil || len(pub) != 2 {
		t.Fatalf("published %v, %v", pub, err)
	}
	pull := func(ref string) string {
		t.Helper()
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(r, remote.WithContext(ctx))
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		d, _ := img.Digest()
		return d.String()
	}
	for _, p := range pub {
		if want[p.Ref] != p.Digest || pull(p.Ref) != p.Digest {
			t.Errorf("published %+v, want digest %s", p, want[p.Ref])
		}
	}
	reg.Stop()

	again, err := registry.Start(ctx, registry.Options{Binary: bin, Dir: filepath.Join(dir, "registry"), Port: reg.Port})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Stop()
	for ref, d := range want {
		if got := pull(ref); got != d {
			t.Errorf("after a restart %s is %s, want %s", ref, got, d)
		}
	}
}

func TestPublishLayoutsErrors(t *testing.T) {
	bin := testsupport.RequireTool(t, registry.DefaultBinary)
	ctx := context.Background()
	dir := t.TempDir()
	if pub, err := registry.PublishLayouts(ctx, filepath.Join(dir, "missing"), "127.0.0.1:1", "p"); err != nil || pub != nil {
		t.Errorf("a folder that does not exist: %v %v, want nothing", pub, err)
	}
	writeLayout(t, dir, "untagged", "")
	reg, err := registry.Start(ctx, registry.Options{Binary: bin, Dir: filepath.Join(t.TempDir(), "r")})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Stop()
	if _, err := registry.PublishLayouts(ctx, dir, reg.Host, "p"); err == nil || !strings.Contains(err.Error(), "no "+registry.RefNameAnnotation) {
		t.Errorf("an image without a ref name: %v", err)
	}
	// A port that is taken: the registry cannot listen, and Start says so
	// with its log instead of waiting.
	if _, err := registry.Start(ctx, registry.Options{Binary: bin, Dir: filepath.Join(t.TempDir(), "r2"), Port: reg.Port}); err == nil {
		t.Error("a second registry on a taken port started")
	}
	if _, err := registry.Start(ctx, registry.Options{Binary: "no-such-registry", Dir: t.TempDir()}); err == nil ||
		!strings.Contains(err.Error(), "docker-registry") {
		t.Errorf("a missing binary: %v", err)
	}
}
