//go:build vm

package qemu

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/imagebuild"
	"github.com/gantry-os/gantry/internal/testsupport"
	"github.com/gantry-os/gantry/pkg/apiclient"
	"github.com/gantry-os/gantry/pkg/version"
)

// TestDisksBootstrapInVM runs the disks bootstrap container (gantry-disks,
// built from containers/disks and pulled from a registry on the host) on a
// node with three blank extra disks, QEMU's virtio-blk with serials: it
// formats one ext4 and one xfs and mounts them under /mnt before the
// orchestrator, and refuses the third, which holds someone else's
// filesystem, naming it. The host's mount table (read through the
// superpowered admin container) has the mounts; after a reboot the disks
// keep their filesystems and files.
func TestDisksBootstrapInVM(t *testing.T) {
	bd, _ := vmImage(t)
	testsupport.RequireTool(t, "mkfs.ext4")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	reg := testsupport.StartRegistry(t)
	publishGantryImages(ctx, t, reg, "disks", "admin")

	dir := vmRunDir(t, "disks")
	disks := []ExtraDisk{{Serial: "scratch", Size: 64 << 20}, {Serial: "fast", Size: 320 << 20}, {Serial: "theirs", Size: 64 << 20}}
	theirs := disks[2].path(dir)
	if err := os.WriteFile(theirs, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Truncate(theirs, disks[2].Size)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "theirs", theirs).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	ud := filepath.Join(t.TempDir(), "user-data.toml")
	os.WriteFile(ud, []byte(mirrorTOML(reg.Port)+`
[settings.bootstrap-containers.disks]
source = "ghcr.io/gantry-os/gantry-disks:`+imagebuild.ImageTag(version.Version)+`"
mode = "always"
essential = true
user-data = "`+b64(`{"disks": [
  {"serial": "scratch", "label": "scratch", "mount": "scratch", "mount-options": ["noatime"]},
  {"serial": "fast", "filesystem": "xfs", "mount": "fast"}]}`)+`"

[settings.bootstrap-containers.foreign]
source = "ghcr.io/gantry-os/gantry-disks:`+imagebuild.ImageTag(version.Version)+`"
mode = "always"
user-data = "`+b64(`{"disks": [{"serial": "theirs", "filesystem": "xfs", "mount": "theirs"}]}`)+`"

[settings.host-containers.admin]
enabled = true
`), 0o644)
	opts := Options{BuildDir: bd, RunDir: dir, UserData: ud, StopTimeout: 30 * time.Second, Disks: disks}
	n, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { n.Stop(context.Background()) }()
	if err := n.WaitForAPI(ctx); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, tail(n.Console(), 60))
	}
	api := apiclient.New(n.SocketPath())
	checkBootstrap(ctx, t, n, api, map[string]string{"disks": "succeeded", "foreign": "failed"}, "", 0)
	for _, w := range []string{"formatted ext4, mounted on /mnt/scratch", "formatted xfs, mounted on /mnt/fast",
		`disks[0] (serial theirs): it holds a filesystem (ext4, labelled "theirs"); not formatted`} {
		if !strings.Contains(n.Console(), w) {
			t.Errorf("the console does not say %q:\n%s", w, grepLines(n.Console(), "disks"))
		}
	}
	checkMounts(ctx, t, n, api)
	if out := execAdmin(ctx, t, api, "echo kept > /.bottlerocket/rootfs/mnt/scratch/file; echo ok"); out != "ok\n" {
		t.Fatalf("write to /mnt/scratch: %q", out)
	}

	// A reboot: the disks keep their filesystems and files.
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err = Start(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitForAPI(ctx); err != nil {
		t.Fatalf("second boot: %v\nconsole:\n%s", err, tail(n.Console(), 60))
	}
	api = apiclient.New(n.SocketPath())
	checkBootstrap(ctx, t, n, api, map[string]string{"disks": "succeeded", "foreign": "failed"}, "", 0)
	for _, w := range []string{"kept its ext4 filesystem, mounted on /mnt/scratch", "kept its xfs filesystem, mounted on /mnt/fast"} {
		if !strings.Contains(n.Console(), w) {
			t.Errorf("second boot: the console does not say %q:\n%s", w, grepLines(n.Console(), "disks"))
		}
	}
	checkMounts(ctx, t, n, api)
	if out := execAdmin(ctx, t, api, "cat /.bottlerocket/rootfs/mnt/scratch/file"); out != "kept\n" {
		t.Errorf("the file on /mnt/scratch after a reboot: %q", out)
	}
}

// checkMounts reads the host's mount table (the admin container is in the
// host's PID namespace) for the disks' mounts.
func checkMounts(ctx context.Context, t *testing.T, n *Node, api *apiclient.Client) {
	t.Helper()
	table := execAdmin(ctx, t, api, "cat /proc/1/mountinfo")
	for point, fs := range map[string]string{"/mnt/scratch": "ext4", "/mnt/fast": "xfs"} {
		found := false
		for _, l := range strings.Split(table, "\n") {
			f := strings.Fields(l)
			if len(f) > 5 && f[4] == point && strings.Contains(l, " - "+fs+" ") {
				found = true
				if point == "/mnt/scratch" && !strings.Contains(","+f[5]+",", ",noatime,") {
					t.Errorf("%s without noatime: %s", point, l)
				}
			}
		}
		if !found {
			t.Errorf("the host has no %s mount on %s:\n%s", fs, point, table)
		}
	}
	if strings.Contains(table, " /mnt/theirs ") {
		t.Error("the refused disk is mounted")
	}
}

// execAdmin runs a bash command in the admin container (superpowered, in
// the host's PID namespace), waiting for the container to run.
func execAdmin(ctx context.Context, t *testing.T, api *apiclient.Client, script string) string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var out bytes.Buffer
		code, err := api.Exec(ctx, apiclient.ExecOptions{Target: "admin", Command: []string{"bash", "-c", script}, Stdout: &out})
		if err == nil && code == 0 {
			return out.String()
		}
		if time.Now().After(deadline) {
			t.Fatalf("exec in admin %q: %d %v %q", script, code, err, out.String())
		}
		time.Sleep(2 * time.Second)
	}
}

// mirrorTOML is user data pointing ghcr.io at the registry on the host's
// port, as gantry run's does.
func mirrorTOML(port int) string {
	return fmt.Sprintf("[[settings.container-registry.mirrors]]\nregistry = \"ghcr.io\"\nendpoint = [\"http://10.0.2.2:%d\"]\n", port)
}
