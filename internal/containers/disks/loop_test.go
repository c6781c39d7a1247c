package disks

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gantry-os/gantry/internal/testsupport"
)

// TestPrepareLoopDevices runs Prepare on real block devices (loop devices)
// with the real blkid, wipefs and mkfs.ext4 and mount(2), as the disks
// container does on a node (the VM test covers xfs: this host's kernel has
// no xfs). It needs root and losetup, so it runs only when
// GANTRY_LOOP_TESTS=1, and always under CI.
func TestPrepareLoopDevices(t *testing.T) {
	testsupport.LoopTests(t)
	testsupport.RequireTools(t, "blkid", "wipefs", "mkfs.ext4", "sfdisk")
	ctx := context.Background()
	blank, foreign := testsupport.LoopDevice(t, 64<<20), testsupport.LoopDevice(t, 64<<20)
	if out, err := exec.Command("mkfs.ext4", "-q", "-L", "theirs", foreign).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	mnt := t.TempDir()
	var log strings.Builder
	s := HostSystem(&log)
	s.MountDir, s.HostMountDirs, s.MountInfo = mnt, []string{mnt}, "/proc/self/mountinfo"
	unmountAll := func() {
		for _, d := range []string{"scratch", "other", "data"} {
			unix.Unmount(filepath.Join(mnt, d), 0)
		}
	}
	t.Cleanup(unmountAll)
	cfg := func(js string) *Config {
		t.Helper()
		c, err := ParseConfig([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	entries := fmt.Sprintf(`{"disks":[{"device":%q,"label":"scratch","mount":"scratch","mount-options":["noatime"]},`+
		`{"device":%q,"mount":"data","filesystem":"ext4","label":"mine"},{"device":"/dev/nothing","mount":"none","optional":true}]}`, blank, foreign)

	// First run: the blank disk is formatted and mounted; the one that
	// already holds the requested filesystem is kept, not formatted (its
	// label stays theirs); the missing optional one is skipped.
	rs, err := s.Prepare(ctx, cfg(entries))
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if len(rs) != 3 || !rs[0].Formatted || rs[1].Formatted || rs[2].Device != "" {
		t.Fatalf("results %+v", rs)
	}
	if got := label(t, blank); got != "scratch" {
		t.Errorf("label %q, want scratch", got)
	}
	if got := label(t, foreign); got != "theirs" {
		t.Errorf("the kept disk's label %q, want theirs (not formatted)", got)
	}
	if !mountedWith(t, filepath.Join(mnt, "scratch"), "noatime") {
		t.Errorf("%s is not mounted with noatime", filepath.Join(mnt, "scratch"))
	}
	for _, w := range []string{blank + ": formatted ext4, mounted on " + filepath.Join(mnt, "scratch"),
		foreign + ": kept its ext4 filesystem", "/dev/nothing: not present, optional: skipped"} {
		if !strings.Contains(log.String(), w) {
			t.Errorf("log does not say %q:\n%s", w, log.String())
		}
	}
	if err := os.WriteFile(filepath.Join(mnt, "scratch", "kept"), []byte("yes"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Again while mounted (mode always, the container restarted): nothing
	// to do.
	if rs, err = s.Prepare(ctx, cfg(entries)); err != nil || !rs[0].AlreadyMounted || !rs[1].AlreadyMounted {
		t.Fatalf("second run: %+v %v", rs, err)
	}

	// A reboot: unmounted; the disk keeps its filesystem and its files.
	unmountAll()
	if rs, err = s.Prepare(ctx, cfg(entries)); err != nil || rs[0].Formatted {
		t.Fatalf("after unmounting: %+v %v", rs, err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "scratch", "kept")); err != nil || string(b) != "yes" {
		t.Errorf("the file on the disk after a remount: %q %v", b, err)
	}

	// A disk mounted somewhere else is in use: refused, and the other
	// disks are still prepared.
	unmountAll()
	elsewhere := t.TempDir()
	if err := unix.Mount(blank, elsewhere, "ext4", 0, ""); err != nil {
		t.Fatal(err)
	}
	_, err = s.Prepare(ctx, cfg(fmt.Sprintf(`{"disks":[{"device":%q,"mount":"other"},{"device":%q,"mount":"data"}]}`, blank, foreign)))
	unix.Unmount(elsewhere, 0)
	if err == nil || !strings.Contains(err.Error(), "disks[0] ("+blank+"): "+blank+" is mounted on "+elsewhere) {
		t.Errorf("a disk mounted elsewhere: %v", err)
	}
	if !mountedWith(t, filepath.Join(mnt, "data"), "") {
		t.Error("the other disk was not mounted after the first one failed")
	}
	unmountAll()

	// A partition table on the disk: refused unless the entry says wipe,
	// and then wiped and formatted.
	sfdisk := exec.Command("sfdisk", "--quiet", "--wipe", "always", blank)
	sfdisk.Stdin = strings.NewReader("label: gpt\n,\n")
	if out, err := sfdisk.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	_, err = s.Prepare(ctx, cfg(fmt.Sprintf(`{"disks":[{"device":%q,"mount":"scratch"}]}`, blank)))
	if err == nil || !strings.Contains(err.Error(), "it holds a partition table (gpt)") || !strings.Contains(err.Error(), `set "wipe": true`) {
		t.Fatalf("a disk with a partition table: %v", err)
	}
	rs, err = s.Prepare(ctx, cfg(fmt.Sprintf(`{"disks":[{"device":%q,"mount":"scratch","wipe":true}]}`, blank)))
	if err != nil || !rs[0].Wiped || !rs[0].Formatted {
		t.Fatalf("wipe: %+v %v", rs, err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "scratch", "kept")); !os.IsNotExist(err) {
		t.Errorf("the wiped disk still has the old file: %v", err)
	}
}

func label(t *testing.T, dev string) string {
	t.Helper()
	out, err := exec.Command("blkid", "--probe", "--output", "value", "--match-tag", "LABEL", dev).Output()
	if err != nil {
		t.Fatalf("blkid %s: %v", dev, err)
	}
	return strings.TrimSpace(string(out))
}

// mountedWith reports whether dir is a mount point whose options include
// opt (any options when opt is "").
func mountedWith(t *testing.T, dir, opt string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 5 && unescape(f[4]) == dir && (opt == "" || strings.Contains(","+f[5]+",", ","+opt+",")) {
			return true
		}
	}
	return false
}
