//go:build vm

package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/pkg/apiclient"
)

// TestPersistAcrossBoots boots the metal-dev image (as TestBootImage finds
// it) on a disk 1 GiB larger than the image. The first boot formats PRIVATE
// and DATA, growing DATA into the extra space; a setting is committed. The
// second boot of the same disk formats nothing, and the setting is still
// there.
func TestPersistAcrossBoots(t *testing.T) {
	bd, image := vmImage(t)
	fi, err := os.Stat(image)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := disklayout.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	data, ok := tab.Partitions().ByName(disklayout.NameData)
	if !ok {
		t.Fatalf("%s has no %s partition", image, disklayout.NameData)
	}
	diskSize := fi.Size() + 1<<30
	wantMiB := (diskSize - disklayout.MiB - data.Start) / disklayout.MiB

	dir := vmRunDir(t, "persist")
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()

	// The first boot commits its launch transaction (defaults and user
	// data) after the API is up; a commit before that would be overwritten.
	// The user data's motd showing up says the launch is done.
	ud := filepath.Join(t.TempDir(), "user-data.toml")
	const udMotd, motd = "from user data", "committed in the first boot"
	if err := os.WriteFile(ud, []byte("[settings]\nmotd = \""+udMotd+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for boot := 1; boot <= 2; boot++ {
		n, err := Start(ctx, Options{BuildDir: bd, RunDir: dir, Fresh: boot == 1, UserData: ud, DiskSize: diskSize, StopTimeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.WaitForAPI(ctx); err != nil {
			n.Stop(context.Background())
			t.Fatalf("boot %d: %v", boot, err)
		}
		if reused := n.DiskReused(); reused != (boot == 2) {
			t.Errorf("boot %d: disk reused = %v", boot, reused)
		}
		// The boot steps reach the console through journald, which runs at a
		// low CPU weight while the API chain starts: wait for prepare-local-fs's
		// last line.
		con := waitForConsole(t, n, 90*time.Second, "prepare-local-fs", "msg=mounted")
		for _, part := range []string{disklayout.NamePrivate, disklayout.NameData} {
			want := "action=formatted"
			if boot == 2 {
				want = "action=kept"
			}
			if len(consoleLines(con, `msg="partition ready"`, "partition="+part+" ", want)) != 1 {
				t.Errorf("boot %d: no %s for %s in the console:\n%s", boot, want, part,
					strings.Join(consoleLines(con, "prepare-local-fs"), "\n"))
			}
		}
		t.Logf("boot %d:\n%s", boot, strings.Join(consoleLines(con, "prepare-local-fs"), "\n"))
		if failed := consoleLines(con, "FAILED"); len(failed) > 0 {
			t.Logf("boot %d: failed units:\n%s", boot, strings.Join(failed, "\n"))
		}
		grew := consoleLines(con, "grew the partition", "partition="+disklayout.NameData)
		switch {
		case boot == 1 && (len(grew) != 1 || !strings.Contains(grew[0], "to_mib="+strconv.FormatInt(wantMiB, 10))):
			t.Errorf("boot 1: DATA did not grow to %d MiB: %q", wantMiB, grew)
		case boot == 2 && len(grew) != 0:
			t.Errorf("boot 2: DATA grew again: %q", grew)
		}

		c := apiclient.New(n.SocketPath())
		if boot == 1 {
			for {
				code, body, err := c.Do(ctx, "GET", "/settings?keys=settings.motd", nil)
				if err == nil && code == 200 && strings.Contains(string(body), udMotd) {
					break
				}
				if ctx.Err() != nil {
					n.Stop(context.Background())
					t.Fatalf("boot 1: user data never arrived: %d %s %v\nconsole:\n%s", code, body, err, tail(n.Console(), 60))
				}
				time.Sleep(time.Second)
			}
			for _, step := range []struct{ method, uri, body string }{
				{"PATCH", "/settings?tx=persist", `{"motd": "` + motd + `"}`},
				{"POST", "/tx/commit_and_apply?tx=persist", ""},
			} {
				var b []byte
				if step.body != "" {
					b = []byte(step.body)
				}
				if code, body, err := c.Do(ctx, step.method, step.uri, b); err != nil || code/100 != 2 {
					t.Fatalf("%s %s: %d %s %v", step.method, step.uri, code, body, err)
				}
			}
			code, body, err := c.Do(ctx, "GET", "/settings?keys=settings.motd", nil)
			if err != nil || code != 200 || !strings.Contains(string(body), `"motd":"`+motd+`"`) {
				t.Errorf("boot 1: settings.motd after the commit: %d %s %v", code, body, err)
			}
		} else {
			code, body, err := c.Do(ctx, "GET", "/settings?keys=settings.motd", nil)
			if err != nil || code != 200 || !strings.Contains(string(body), `"motd":"`+motd+`"`) {
				t.Errorf("boot 2: settings.motd: %d %s %v", code, body, err)
			}
		}
		if err := n.Stop(ctx); err != nil {
			t.Fatalf("boot %d: stop: %v", boot, err)
		}
		n.Wait()
		if t.Failed() {
			t.Logf("boot %d console:\n%s", boot, tail(n.Console(), 80))
			return
		}
	}
}

// waitForConsole returns the node's console once a line holds every one of
// words, or fails the test after timeout.
func waitForConsole(t *testing.T, n *Node, timeout time.Duration, words ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		con := n.Console()
		if len(consoleLines(con, words...)) > 0 {
			return con
		}
		if time.Now().After(deadline) {
			t.Errorf("no console line with %q after %s", words, timeout)
			return con
		}
		time.Sleep(200 * time.Millisecond)
	}
}
