//go:build vm

package qemu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/testsupport"
)

// TestTamperedImageFailsLoudly boots a copy of the built image whose root
// filesystem has one byte changed (in the erofs superblock, which every
// boot reads): dm-verity must catch it, the console must say so, and the
// node must never serve its API.
func TestTamperedImageFailsLoudly(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	bd := testsupport.RepoPath(t, DefaultBuildDir)
	img, err := FindImage(bd)
	testsupport.Require(t, err == nil, fmt.Sprintf("no image to boot: %v", err), "`make image` (make test builds it before the tests), or GANTRY_BUILD_DIR")
	testsupport.RequireTool(t, DefaultQEMU)
	dir := t.TempDir()
	bad := filepath.Join(dir, filepath.Base(img))
	if out, err := exec.Command("cp", "--sparse=always", img, bad).CombinedOutput(); err != nil {
		t.Fatalf("copy image: %v %s", err, out)
	}
	tbl, err := disklayout.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	set, err := tbl.Partitions().Set(disklayout.SetA)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := disklayout.OpenPartition(bad, set.Root.Number, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	const off = 1024 + 40 // inside the erofs superblock
	sec.ReadAt(b, off)
	b[0] ^= 0xff
	if _, err := sec.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	sec.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	n, err := Start(ctx, Options{BuildDir: bd, Image: bad, RunDir: filepath.Join(dir, "run"), Fresh: true, NoReboot: true,
		StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(context.Background())
	apiCtx, apiCancel := context.WithTimeout(ctx, 90*time.Second)
	defer apiCancel()
	if err := n.WaitForAPI(apiCtx); err == nil {
		t.Fatalf("a tampered root served the API\nconsole:\n%s", tail(n.Console(), 40))
	}
	con := n.Console()
	if !strings.Contains(con, "corrupted") {
		t.Fatalf("the console does not report the corruption:\n%s", tail(con, 40))
	}
	if strings.Contains(con, "switching root") && strings.Contains(con, "Started apiserver") {
		t.Fatalf("the tampered root booted to the API server:\n%s", tail(con, 40))
	}
}
