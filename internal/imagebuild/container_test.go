package imagebuild

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gantry-os/gantry/internal/settings/storewolf"
	"github.com/gantry-os/gantry/internal/testsupport"
	"github.com/gantry-os/gantry/pkg/model"
	"github.com/gantry-os/gantry/pkg/version"
)

// TestBuildContainer builds the test web image (Debian's busybox-static
// and a file) twice: the same digest both times, an OCI layout, the
// configuration asked for, and the image in a real registry after --push,
// as pulled back from it.
func TestBuildContainer(t *testing.T) {
	needTools(t, "apt-get", "apt-cache", "dpkg-deb", "go")
	src := sourceRoot(t)
	dir := filepath.Join(src, "internal/containers/testdata/web")
	lock := filepath.Join(t.TempDir(), LockFile)
	if data, err := os.ReadFile(filepath.Join(dir, LockFile)); err == nil {
		if err := os.WriteFile(lock, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reg := testsupport.StartRegistry(t)
	epoch := int64(1700000000)
	var digests []string
	var last *ContainerResult
	for i := range 2 {
		o := ContainerOptions{Dir: dir, Source: src, Out: filepath.Join(t.TempDir(), "out"), LockFile: lock, Epoch: &epoch, Version: "1.2.3"}
		if i == 1 {
			o.Push = []string{reg.Host + "/gantry-os/test-web:v1"}
		}
		res, err := BuildContainer(context.Background(), o)
		if err != nil {
			t.Fatalf("build %d: %v", i+1, err)
		}
		digests = append(digests, res.Digest)
		last = res
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds of the same inputs differ: %v", digests)
	}
	if last.Packages != 1 || last.Files == 0 || len(last.Pushed) != 1 {
		t.Errorf("result %+v", last)
	}
	lp, err := layout.FromPath(last.Layout)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != last.Digest {
		t.Fatalf("layout index %+v, %v", im, err)
	}
	ref, err := name.ParseReference(reg.Host+"/gantry-os/test-web:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull back from the registry: %v", err)
	}
	if dg, _ := img.Digest(); dg.String() != last.Digest {
		t.Errorf("registry has %s, built %s", dg, last.Digest)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || !slices.Contains(cf.Config.Env, defaultPath) ||
		len(cf.Config.Cmd) == 0 || cf.Config.Labels["org.opencontainers.image.version"] != "1.2.3" || cf.Created.Unix() != epoch {
		t.Errorf("config %+v", cf)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %v, %v", layers, err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	names, err := tarNames(rc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"usr/bin/busybox", "etc/web-version", "etc/passwd", "bin"} {
		if !slices.Contains(names, want) {
			t.Errorf("layer lacks %s: %s", want, strings.Join(names, " "))
		}
	}
}

// tarNames lists a tar stream's entry names, without a trailing "/".
func tarNames(r io.Reader) ([]string, error) {
	var names []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		names = append(names, strings.TrimSuffix(h.Name, "/"))
	}
}

func TestLoadContainerErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"no cmd", "name = \"x\"\n", "an entrypoint or a cmd is needed"},
		{"bad name", "name = \"X Y\"\n[config]\ncmd = [\"a\"]\n", "name \"X Y\""},
		{"unknown key", "name = \"x\"\nimage = 1\n[config]\ncmd = [\"a\"]\n", "unknown key image"},
		{"packages without distribution", "name = \"x\"\n[packages]\ninclude = [\"bash\"]\n[config]\ncmd = [\"a\"]\n", "need distribution-from"},
		{"bad arch", "name = \"x\"\narch = \"mips\"\n[config]\ncmd = [\"a\"]\n", "arch"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ContainerFile), []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadContainer(dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestDefaultHostContainerSources checks that every variant's default
// sources for Gantry's own host containers name the images this tree
// builds: ghcr.io/gantry-os/<container.toml name>:<ImageTag(version)>,
// the ref gantry container build puts in the layout and gantry run
// publishes, so that a version bump cannot leave the defaults behind.
func TestDefaultHostContainerSources(t *testing.T) {
	src := sourceRoot(t)
	for variant := range model.BuiltinVariants() {
		defaults, err := storewolf.LoadDefaults(filepath.Join(src, "variants", variant, "defaults.d"))
		if err != nil {
			t.Fatal(err)
		}
		hc, _ := defaults["settings"].(map[string]any)["host-containers"].(map[string]any)
		for _, c := range []string{"admin", "control"} {
			spec, err := LoadContainer(filepath.Join(src, "containers", c))
			if err != nil {
				t.Fatal(err)
			}
			entry, _ := hc[c].(map[string]any)
			want := "ghcr.io/gantry-os/" + spec.Name + ":" + ImageTag(version.Version)
			if entry["source"] != want || entry["enabled"] != false {
				t.Errorf("%s: settings.host-containers.%s = %v, want source %q and enabled = false", variant, c, entry, want)
			}
		}
	}
}

func TestImageTag(t *testing.T) {
	for in, want := range map[string]string{"0.1.0": "v0.1.0", "v2": "v2", "latest": "latest", "": ""} {
		if got := ImageTag(in); got != want {
			t.Errorf("ImageTag(%q) = %q, want %q", in, got, want)
		}
	}
}
