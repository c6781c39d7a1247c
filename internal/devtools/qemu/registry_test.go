package qemu

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/gantry-os/gantry/internal/devtools/registry"
	"github.com/gantry-os/gantry/internal/testsupport"
)

// TestStartRegistry runs gantry run's registry step against the real
// registry: the built layout is published under gantry-os/, the user data
// passed gains the ghcr.io mirror at the guest's address of the port, and
// a second run of the same run directory keeps the port (the node's
// settings name it) and the published image.
func TestStartRegistry(t *testing.T) {
	testsupport.RequireTool(t, registry.DefaultBinary)
	ctx := context.Background()
	dir := t.TempDir()
	built := filepath.Join(dir, "containers")
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := layout.Write(filepath.Join(built, "admin", "oci"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{registry.RefNameAnnotation: "gantry-admin:v0.1.0"})); err != nil {
		t.Fatal(err)
	}
	ud := filepath.Join(dir, "ud.toml")
	os.WriteFile(ud, []byte("[settings]\nmotd = \"hi\"\n"), 0o644)
	run := filepath.Join(dir, "run")
	os.MkdirAll(run, 0o755)
	o := Options{RunDir: run, Containers: built, UserData: ud, Logger: slog.New(slog.DiscardHandler)}

	s, err := startRegistry(ctx, o, false)
	if err != nil {
		t.Fatal(err)
	}
	port := s.info.Port
	if len(s.info.Images) != 1 || s.info.Images[0].Ref != s.info.Host+"/gantry-os/gantry-admin:v0.1.0" || s.info.Mirror != UserDataRepoAdded {
		t.Errorf("registry %+v", s.info)
	}
	b, err := os.ReadFile(s.userData)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `endpoint = ["http://10.0.2.2:`+strconv.Itoa(port)+`"]`) || !strings.Contains(string(b), `motd = "hi"`) {
		t.Errorf("user data passed:\n%s", b)
	}
	s.close()

	again, err := startRegistry(ctx, o, true)
	if err != nil {
		t.Fatal(err)
	}
	defer again.close()
	if again.info.Port != port || again.info.PortChanged {
		t.Errorf("second run on port %d (changed %v), want %d", again.info.Port, again.info.PortChanged, port)
	}
}

func TestContainersDir(t *testing.T) {
	exists := t.TempDir()
	for _, tc := range []struct {
		flag       string
		given, off bool
		want       string
	}{
		{exists, false, false, exists},
		{filepath.Join(exists, "missing"), false, false, ""},
		{filepath.Join(exists, "missing"), true, false, filepath.Join(exists, "missing")},
		{exists, true, true, ""},
	} {
		if got := containersDir(tc.flag, tc.given, tc.off); got != tc.want {
			t.Errorf("containersDir(%q, %v, %v) = %q, want %q", tc.flag, tc.given, tc.off, got, tc.want)
		}
	}
}
