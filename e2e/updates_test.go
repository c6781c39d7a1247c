package e2e

import (
	"context"
	"crypto/rand"
	"github.com/gantry-os/gantry/pkg/version"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/update/manifest"
	"github.com/gantry-os/gantry/internal/update/signpost"
	"github.com/gantry-os/gantry/internal/update/tufrepo"
)

// TestUpdateFlowThroughTheAPI runs Bottlerocket's documented flow verbatim
// against the real apiserver: refresh → status → prepare → status →
// activate → reboot, with a real repository on 127.0.0.1 and a GPT image.
func TestUpdateFlowThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kp, err := tufrepo.GenerateKey(filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tufrepo.LoadKey(kp.Private)
	one := tufrepo.RoleKeys{Keys: []*tufrepo.Key{key}}
	repo, err := tufrepo.Create(ctx, filepath.Join(dir, "repo"), tufrepo.CreateOptions{Root: one, Targets: one, Snapshot: one, Timestamp: one})
	if err != nil {
		t.Fatal(err)
	}
	imgs := map[string]string{}
	for _, k := range []string{"boot", "root", "hash"} {
		b := make([]byte, 512<<10)
		rand.Read(b)
		imgs[k] = filepath.Join(dir, k+".img")
		os.WriteFile(imgs[k], b, 0o644)
	}
	v100, v110 := version.Semver{Major: 1}, version.Semver{Major: 1, Minor: 1}
	if _, err := repo.AddRelease(ctx, tufrepo.Release{Variant: "metal-dev", Arch: "x86_64", Version: v110,
		Boot: imgs["boot"], Root: imgs["root"], Hash: imgs["hash"],
		Transitions: map[manifest.Transition][]string{{From: v100, To: v110}: {}}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tufrepo.Handler(repo.Dir()))
	defer srv.Close()
	layout, _ := disklayout.Plan(disklayout.Options{OSImageGiB: 1})
	disk := filepath.Join(dir, "disk.img")
	if err := disklayout.WriteFile(disk, layout.OS); err != nil {
		t.Fatal(err)
	}
	rebootLog := filepath.Join(dir, "rebooted")
	rebootCmd := filepath.Join(dir, "reboot.sh")
	os.WriteFile(rebootCmd, []byte("#!/bin/sh\ntouch "+rebootLog+"\n"), 0o755)

	n := newNodeWith(t, buildAll(t), "--root-json", repo.RootPath(), "--update-disk", disk, "--update-active-set", "A",
		"--metadata-directory", filepath.Join(dir, "md"), "--migration-directory", filepath.Join(dir, "mig"),
		"--reboot-command", rebootCmd)
	n.api("set", "updates.metadata-base-url="+srv.URL+"/metadata/", "updates.targets-base-url="+srv.URL+"/targets/", "updates.version-lock=latest")

	waitFor := func(state string) string {
		t.Helper()
		for i := 0; i < 200; i++ {
			code, out, _ := n.exec("apiclient", "--socket-path", n.socket, "-u", "/updates/status")
			if code == 0 && strings.Contains(out, `"update_state":"`+state+`"`) {
				return out
			}
			time.Sleep(25 * time.Millisecond)
		}
		_, out, errs := n.exec("apiclient", "--socket-path", n.socket, "-u", "/updates/status")
		t.Fatalf("update state never became %s: %s %s", state, out, errs)
		return ""
	}
	n.api("-m", "POST", "-u", "/actions/refresh-updates")
	st := waitFor("Available")
	if !strings.Contains(st, `"chosen_update":{"arch":"x86_64","version":"1.1.0","variant":"metal-dev"}`) {
		t.Fatalf("status after refresh: %s", st)
	}
	n.api("-m", "POST", "-u", "/actions/prepare-update")
	waitFor("Staged")
	n.api("-m", "POST", "-u", "/actions/activate-update")
	st = waitFor("Ready")
	if !strings.Contains(st, `"staging_partition":{"image":{"arch":"x86_64","version":"1.1.0","variant":"metal-dev"},"next_to_boot":true}`) {
		t.Fatalf("status after activate: %s", st)
	}
	state, err := signpost.Load(disk, disklayout.SetA)
	if err != nil {
		t.Fatal(err)
	}
	if next, _ := signpost.SimulateBoot(state); next != disklayout.SetB {
		t.Fatalf("after activate-update the next boot is %s", next)
	}
	n.api("-m", "POST", "-u", "/actions/reboot")
	if _, err := os.Stat(rebootLog); err != nil {
		t.Fatal("reboot did not run")
	}
	// The client helper: cancel, then apply again with --check.
	n.api("update", "cancel")
	if out := n.api("update", "apply", "--check"); !strings.Contains(out, `"update_state": "Ready"`) {
		t.Fatalf("update apply --check: %s", out)
	}
	code, _, errs := n.exec("apiclient", "--socket-path", n.socket, "-m", "POST", "-u", "/actions/prepare-update")
	if code != 1 || !strings.Contains(errs, "Status 409") {
		t.Fatalf("prepare in Ready: exit %d %s", code, errs)
	}
}
