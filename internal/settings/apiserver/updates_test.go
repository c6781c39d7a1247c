package apiserver

import (
	"context"
	"github.com/gantry-os/gantry/pkg/version"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/update/manifest"
	"github.com/gantry-os/gantry/internal/update/updateapi"
)

// oneUpdate offers version 1.1.0 and succeeds at everything; the real
// updater (updog) is tested end to end in its own package.
type oneUpdate struct{}

func (oneUpdate) Refresh(context.Context) ([]manifest.Update, *manifest.Update, error) {
	v, _ := version.Parse("1.1.0")
	u := manifest.Update{Variant: "metal-dev", Arch: "x86_64", Version: v, MaxVersion: v}
	return []manifest.Update{u}, &u, nil
}
func (oneUpdate) Prepare(context.Context, updateapi.Image) error { return nil }
func (oneUpdate) Activate(context.Context) error                 { return nil }
func (oneUpdate) Deactivate(context.Context) error               { return nil }

func TestUpdateRoutes(t *testing.T) {
	e := newTestEnv(t, "metal-dev")
	e.run([]step{
		{"GET", "/updates/status", "", 503, "", "not configured"},
		{"POST", "/actions/refresh-updates", "", 503, "", "not configured"},
		{"POST", "/actions/reboot", "", 503, "", "not configured"},
	})
	m, err := updateapi.New(context.Background(), t.TempDir(), oneUpdate{}, updateapi.Image{Arch: "x86_64", Version: "1.0.0", Variant: "metal-dev"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.cfg.Updates = m
	rebooted := false
	e.srv.cfg.Reboot = func(context.Context) error { rebooted = true; return nil }
	waitState := func(want string) {
		t.Helper()
		for i := 0; i < 100; i++ {
			if code, body := e.do("GET", "/updates/status", ""); code == 200 && jsonField(body, "update_state") == want {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("update state never became %s", want)
	}
	e.run([]step{
		{"GET", "/updates/status", "", 404, "", "uninitialized"},
		{"POST", "/actions/activate-update", "", 409, "", "activate needs Staged"},
		{"POST", "/actions/refresh-updates", "", 204, "", ""},
	})
	waitState("Available")
	e.run([]step{{"POST", "/actions/prepare-update", "", 204, "", ""}})
	waitState("Staged")
	e.run([]step{{"POST", "/actions/activate-update", "", 204, "", ""}})
	waitState("Ready")
	e.run([]step{
		{"GET", "/updates/status", "", 200, "", `"chosen_update":{"arch":"x86_64","version":"1.1.0","variant":"metal-dev"}`},
		{"POST", "/actions/reboot", "", 204, "", ""},
	})
	if !rebooted {
		t.Fatal("reboot did not run")
	}
}
