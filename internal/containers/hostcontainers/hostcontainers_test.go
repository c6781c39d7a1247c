package hostcontainers

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/containers/hostctr"
)

func TestAffected(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys []string
		want bool
	}{
		{"admin", nil, true},
		{"admin", []string{"settings.host-containers.admin.enabled"}, true},
		{"admin", []string{"settings.host-containers.admin"}, true},
		{"admin", []string{"settings.host-containers.control.enabled"}, false},
		{"admin", []string{"settings.host-containers.admin2.source"}, false},
		{"admin", []string{"settings.host-containers.control.source", "settings.network.https-proxy"}, true},
		{"admin", []string{"settings.container-registry.mirrors"}, true},
		{"admin", []string{"settings.host-containers"}, true},
	} {
		if got := Affected(tc.name, tc.keys); got != tc.want {
			t.Errorf("Affected(%s, %v) = %v, want %v", tc.name, tc.keys, got, tc.want)
		}
	}
}

// recorder records the unit jobs; a start of a unit in fail fails, after
// writing host-ctr's status as host-ctr would.
type recorder struct {
	jobs  []string
	fail  map[string]string
	paths hostctr.Paths
}

func (r *recorder) Start(_ context.Context, unit string, wait bool) error {
	r.jobs = append(r.jobs, "start "+unit+map[bool]string{true: "", false: " (no wait)"}[wait])
	if msg, ok := r.fail[unit]; ok {
		name := strings.TrimSuffix(strings.TrimPrefix(unit, "host-containers@"), ".service")
		st := `{"state":"failed","error":"` + msg + `"}`
		p := r.paths.StatusPath(hostctr.Container{Name: name, Kind: hostctr.Host})
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(st), 0o644); err != nil {
			return err
		}
		return errors.New("job failed")
	}
	return nil
}

func (r *recorder) Stop(_ context.Context, unit string) error {
	r.jobs = append(r.jobs, "stop "+unit)
	return nil
}

func TestApply(t *testing.T) {
	dir := t.TempDir()
	paths := hostctr.Paths{Local: filepath.Join(dir, "local"), Status: filepath.Join(dir, "run")}
	ud := base64.StdEncoding.EncodeToString([]byte(`{"ssh":{"authorized-keys":["ssh-ed25519 AAAA"]}}`))
	all := map[string]Settings{
		"admin":   {Source: "registry.example.com/admin:v1", Enabled: true, Superpowered: true, UserData: ud},
		"control": {Source: "registry.example.com/control:v1", Enabled: false},
		"broken":  {Source: "registry.example.com/nothing:v1", Enabled: true},
		"badref":  {Source: "Not/A/Ref", Enabled: true},
	}
	r := &recorder{fail: map[string]string{Unit("broken"): "pull registry.example.com/nothing:v1: not found"}, paths: paths}
	err := Apply(context.Background(), all, Options{Paths: paths, Systemd: r,
		Changed: []string{"settings.host-containers.admin.user-data", "settings.host-containers.control.enabled",
			"settings.host-containers.broken.source", "settings.host-containers.badref.source"}})
	want := []string{"stop host-containers@admin.service", "start host-containers@admin.service",
		"stop host-containers@broken.service", "start host-containers@broken.service", "stop host-containers@control.service"}
	if !slices.Equal(r.jobs, want) {
		t.Errorf("jobs %q\nwant %q", r.jobs, want)
	}
	if err == nil {
		t.Fatal("no error for the broken and badref containers")
	}
	for _, want := range []string{"host-containers.broken: did not start: pull registry.example.com/nothing:v1: not found",
		`host-containers.badref: source "Not/A/Ref" is not an image reference`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	b, err := os.ReadFile(filepath.Join(paths.Local, "host-containers/admin/user-data"))
	if err != nil || !strings.Contains(string(b), "authorized-keys") {
		t.Errorf("admin user data: %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(paths.Local, "host-containers/admin")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("persistent directory: %v %v", fi, err)
	}

	// Unsetting the user data removes the file; a change elsewhere at boot
	// queues the start without waiting.
	all["admin"] = Settings{Source: "registry.example.com/admin:v1", Enabled: true}
	r.jobs = nil
	if err := Apply(context.Background(), map[string]Settings{"admin": all["admin"]}, Options{Paths: paths, Systemd: r, Boot: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(paths.Local, "host-containers/admin/user-data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("user data left behind: %v", err)
	}
	if want := []string{"stop host-containers@admin.service", "start host-containers@admin.service (no wait)"}; !slices.Equal(r.jobs, want) {
		t.Errorf("boot jobs %q, want %q", r.jobs, want)
	}
}
