package qemu

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/testsupport"
	"github.com/gantry-os/gantry/internal/update/signpost"
)

// bootDisk writes a real two-set OS disk (1 GiB, split plan) whose BOOT
// partitions hold ext4 file systems with vmlinuz, initrd.img and cmdline
// naming their set, as `gantry build` and updog write them. It is skipped
// (failed under CI) without mkfs.ext4 and debugfs (e2fsprogs).
func bootDisk(t *testing.T) string {
	t.Helper()
	testsupport.RequireTools(t, "mkfs.ext4", DefaultDebugfs)
	l, err := disklayout.Plan(disklayout.Options{OSImageGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "os.img")
	if err := disklayout.WriteFile(img, l.OS); err != nil {
		t.Fatal(err)
	}
	for _, id := range []disklayout.SetID{disklayout.SetA, disklayout.SetB} {
		set, err := l.OS.Partitions.Set(id)
		if err != nil {
			t.Fatal(err)
		}
		files := filepath.Join(dir, "boot-"+string(id))
		os.MkdirAll(files, 0o755)
		os.WriteFile(filepath.Join(files, BuildKernel), []byte("kernel of set "+string(id)), 0o644)
		// Zero runs become holes in the file system (mke2fs -d), which
		// the loader must read back as zeros.
		initrd := append(append([]byte("initrd of set "+string(id)), make([]byte, 64<<10)...), "end"...)
		os.WriteFile(filepath.Join(files, BuildInitrd), initrd, 0o644)
		os.WriteFile(filepath.Join(files, BuildCmdline), []byte("ro quiet gantry.roothash="+strings.Repeat(strings.ToLower(string(id)), 64)+"\n"), 0o644)
		out, err := exec.Command("mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "^has_journal", "-E", "offset="+strconv.FormatInt(set.Boot.Start, 10),
			"-d", files, img, strconv.FormatInt(set.Boot.Size/4096, 10)).CombinedOutput()
		if err != nil {
			t.Fatalf("mkfs.ext4 BOOT-%s: %v: %s", id, err, out)
		}
	}
	return img
}

// setFlags writes the gptprio flags of both sets.
func setFlags(t *testing.T, img string, a, b signpost.Prio) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tbl, err := disklayout.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	for id, p := range map[disklayout.SetID]signpost.Prio{disklayout.SetA: a, disklayout.SetB: b} {
		set, err := tbl.Partitions().Set(id)
		if err != nil {
			t.Fatal(err)
		}
		if err := tbl.SetAttributes(set.Boot.Number, p.Apply(set.Boot.Attributes)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tbl.WriteBack(f); err != nil {
		t.Fatal(err)
	}
}

// prio is a set's gptprio flags.
func prio(priority, tries int, successful bool) signpost.Prio {
	return signpost.Prio{Priority: priority, TriesLeft: tries, Successful: successful}
}

func TestBootFromDisk(t *testing.T) {
	template := bootDisk(t)
	fresh := prio(1, 0, true)
	tests := []struct {
		name         string
		a, b         signpost.Prio
		breakBootB   bool // BOOT-B's file system is unreadable
		want         disklayout.SetID
		wantA, wantB signpost.Prio // on disk afterwards
		wantFailed   int
		wantErr      error
	}{
		{name: "fresh image boots A", a: fresh, b: prio(0, 0, false), want: "A", wantA: fresh, wantB: prio(0, 0, false)},
		{name: "inactive set written and valid, not activated", a: fresh, b: prio(0, 1, false), want: "A", wantA: fresh, wantB: prio(0, 1, false)},
		{name: "upgrade: B gets its one try", a: prio(1, 0, true), b: prio(2, 1, false), want: "B", wantA: prio(1, 0, true), wantB: prio(2, 0, false)},
		{name: "B never marked successful: back to A", a: prio(1, 0, true), b: prio(2, 0, false), want: "A", wantA: prio(1, 0, true), wantB: prio(2, 0, false)},
		{name: "B successful: no try taken", a: prio(1, 0, true), b: prio(2, 0, true), want: "B", wantA: prio(1, 0, true), wantB: prio(2, 0, true)},
		{name: "tie: A wins", a: prio(2, 0, true), b: prio(2, 0, true), want: "A", wantA: prio(2, 0, true), wantB: prio(2, 0, true)},
		{name: "priority 0 successful is never booted", a: prio(0, 0, true), b: prio(1, 1, false), want: "B", wantA: prio(0, 0, true), wantB: prio(1, 0, false)},
		{name: "unreadable BOOT: its try is spent, A boots", a: fresh, b: prio(2, 1, false), breakBootB: true, want: "A",
			wantA: fresh, wantB: prio(2, 0, false), wantFailed: 1},
		{name: "nothing bootable", a: prio(0, 0, false), b: prio(0, 1, false), wantErr: signpost.ErrNoBootableSet,
			wantA: prio(0, 0, false), wantB: prio(0, 1, false)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "disk.img")
			if err := sparseCopy(context.Background(), img, template); err != nil {
				t.Fatal(err)
			}
			setFlags(t, img, tc.a, tc.b)
			tbl, err := disklayout.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			sets, _ := tbl.Partitions().Sets()
			if tc.breakBootB {
				sec, err := disklayout.OpenPartition(img, sets[1].Boot.Number, os.O_RDWR)
				if err != nil {
					t.Fatal(err)
				}
				sec.WriteAt(make([]byte, 64<<10), 0)
				sec.Close()
			}
			bootDir := filepath.Join(dir, RunBootDir)
			b, failed, err := bootFromDisk(context.Background(), DefaultDebugfs, img, bootDir, false, []string{"systemd.log_level=debug"})
			if len(failed) != tc.wantFailed {
				t.Errorf("failed loads %v, want %d", failed, tc.wantFailed)
			}
			st, lerr := signpost.Load(img, "")
			if lerr != nil {
				t.Fatal(lerr)
			}
			if got := st.Prio(disklayout.SetA); got != tc.wantA {
				t.Errorf("A on disk: %s, want %s", got, tc.wantA)
			}
			if got := st.Prio(disklayout.SetB); got != tc.wantB {
				t.Errorf("B on disk: %s, want %s", got, tc.wantB)
			}
			if w := st.Warnings(); len(w) != 0 {
				t.Errorf("GPT problems after the boot loader wrote it: %v", w)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			set := sets[0]
			if tc.want == disklayout.SetB {
				set = sets[1]
			}
			if b.Set != tc.want || b.BootGUID != set.Boot.GUID {
				t.Fatalf("booted %s (BOOT %s), want %s (BOOT %s)", b.Set, b.BootGUID, tc.want, set.Boot.GUID)
			}
			kernel, _ := os.ReadFile(b.Kernel)
			initrd, _ := os.ReadFile(b.Initrd)
			if string(kernel) != "kernel of set "+string(tc.want) {
				t.Errorf("kernel %q", kernel)
			}
			wantInitrd := append(append([]byte("initrd of set "+string(tc.want)), make([]byte, 64<<10)...), "end"...)
			if string(initrd) != string(wantInitrd) {
				t.Errorf("initrd of %d bytes does not match the one in BOOT-%s (%d bytes)", len(initrd), tc.want, len(wantInitrd))
			}
			wantLine := "ro quiet gantry.roothash=" + strings.Repeat(strings.ToLower(string(tc.want)), 64) +
				" console=ttyS0 gantry.api-bridge gantry.bootuuid=" + set.Boot.GUID + " systemd.log_level=debug"
			if b.Cmdline != wantLine {
				t.Errorf("command line\n got  %q\n want %q", b.Cmdline, wantLine)
			}
		})
	}
}

func TestLoadBootFilesErrors(t *testing.T) {
	img := bootDisk(t)
	tbl, err := disklayout.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sets, _ := tbl.Partitions().Sets()
	private, _ := tbl.Partitions().Private()
	// An ext4 file system without the boot files on the other set's HASH.
	hash := sets[1].Hash
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "offset="+strconv.FormatInt(hash.Start, 10),
		img, strconv.FormatInt(hash.Size/4096, 10)).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	tests := []struct {
		name, debugfs, disk string
		part                disklayout.Partition
		wantErr             string
	}{
		{"not ext4", DefaultDebugfs, img, private, "Bad magic number"},
		{"ext4 without the files", DefaultDebugfs, img, hash, "no vmlinuz in its file system: /vmlinuz: File not found"},
		{"question mark in the path", DefaultDebugfs, img + "?x", sets[0].Boot, "contains '?'"},
		{"no debugfs", "/nonexistent/debugfs", img, sets[0].Boot, "/nonexistent/debugfs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadBootFiles(context.Background(), tc.debugfs, tc.disk, tc.part, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestRebootGoesThroughTheBootLoader runs a node from disk with the fake
// QEMU: a pending upgrade boots B (taking its try), a guest reboot ends
// that QEMU, and the boot loader then boots A, on the same disk, host
// socket and port. With NoReboot, the guest's reboot ends the node.
func TestRebootGoesThroughTheBootLoader(t *testing.T) {
	img := bootDisk(t)
	setFlags(t, img, prio(1, 0, true), prio(2, 1, false))
	tbl, err := disklayout.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sets, _ := tbl.Partitions().Sets()

	for _, noReboot := range []bool{false, true} {
		t.Run("NoReboot="+strconv.FormatBool(noReboot), func(t *testing.T) {
			o := fakeNode(t, nil)
			o.BuildDir, o.Boot, o.Image, o.NoReboot = "", BootDisk, img, noReboot
			trigger := filepath.Join(t.TempDir(), "reboot")
			t.Setenv("GANTRY_FAKE_REBOOT_FILE", trigger)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			n, err := Start(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer n.Stop(ctx)
			if err := n.WaitForAPI(ctx); err != nil {
				t.Fatal(err)
			}
			first, port := n.Boot(), n.HostPort()
			if first.N != 1 || first.Set != disklayout.SetB || !strings.Contains(n.Console(), "Linux version fake (kernel of set B)") {
				t.Fatalf("first boot %s\nconsole:\n%s", first, n.Console())
			}
			os.WriteFile(trigger, nil, 0o644)
			if noReboot {
				select {
				case <-n.Exited():
				case <-ctx.Done():
					t.Fatal("the node did not end at the guest's reboot")
				}
				if n.Boot().N != 1 {
					t.Fatalf("rebooted with NoReboot: %s", n.Boot())
				}
				return
			}
			for n.Boot().N < 2 && ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
			}
			if err := n.WaitForAPI(ctx); err != nil {
				t.Fatal(err)
			}
			b := n.Boot()
			con := n.Console()
			if b.N != 2 || b.Set != disklayout.SetA || n.HostPort() != port ||
				!strings.Contains(n.Cmdline(), "gantry.bootuuid="+sets[0].Boot.GUID) ||
				!strings.Contains(con, "reboot: Restarting system\ngantry run: boot loader: boot 2: set A") ||
				!strings.Contains(con, "Linux version fake (kernel of set A)") {
				t.Fatalf("after the reboot: %s, port %d (was %d), command line %q\nconsole:\n%s", b, n.HostPort(), port, n.Cmdline(), con)
			}
			if err := n.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if err := n.Wait(); err != nil {
				t.Fatalf("Wait: %v", err)
			}
		})
	}
}
