package bootinit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/testsupport"
	"github.com/gantry-os/gantry/internal/update/gptprio"
)

const testHash = "039d8785849ea462eafbdd29065da27a6b95554365ea2b67af451117fd1de710"

func TestIsSelector(t *testing.T) {
	for _, tt := range []struct {
		line string
		want bool
	}{
		{"console=ttyS0 gantry.select", true},
		{"gantry.select=1 quiet", true},
		{"gantry.select=yes", true},
		{"gantry.select=0", false},
		{"gantry.select gantry.select=0", false}, // the last one wins
		{"gantry.roothash=" + testHash, false},
		{"console=ttyS0 -- gantry.select", false}, // init's argument
		{"gantry.selected", false},
	} {
		if got := IsSelector(tt.line); got != tt.want {
			t.Errorf("IsSelector(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
	// The second kernel's gantry-init does not warn about the parameter.
	c, err := ParseCmdline("gantry.select=0 gantry.roothash=" + testHash)
	if err != nil || len(c.Warnings) != 0 {
		t.Errorf("ParseCmdline with gantry.select: %v, warnings %v", err, c.Warnings)
	}
}

func TestNextCmdline(t *testing.T) {
	const guid = "8e78708f-0030-45f0-ac8a-278f19b80e53"
	const up = "gantry.bootuuid=8E78708F-0030-45F0-AC8A-278F19B80E53"
	for _, tt := range []struct {
		name, line string
		extra      []string
		want       string
	}{
		{"plain", "console=ttyS0 gantry.roothash=ab\n", nil, "console=ttyS0 gantry.roothash=ab " + up},
		{"extra from fw_cfg", "quiet", []string{"gantry.api-bridge systemd.log_level=debug"},
			"quiet " + up + " gantry.api-bridge systemd.log_level=debug"},
		{"init arguments stay last", "quiet -- --unit=rescue.target", []string{"x=1"}, "quiet " + up + " x=1 -- --unit=rescue.target"},
		{"trailing --", "quiet --", nil, "quiet " + up + " --"},
		{"only init arguments", "-- single", nil, up + " -- single"},
		{"quoted value kept", `a="b c" d`, nil, `a="b c" d ` + up},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := NextCmdline(tt.line, guid, tt.extra)
			if got != tt.want {
				t.Fatalf("NextCmdline = %q, want %q", got, tt.want)
			}
			// What the second gantry-init will see.
			c, _ := ParseCmdline(got)
			if c.BootUUID != strings.ToUpper(guid) {
				t.Errorf("the next kernel's gantry-init reads bootuuid %q", c.BootUUID)
			}
		})
	}
}

func TestReadFwCfgCmdline(t *testing.T) {
	dir := t.TempDir()
	if got, err := ReadFwCfgCmdline(dir); err != nil || got != nil {
		t.Fatalf("no entry: %v, %v", got, err)
	}
	entry := filepath.Join(dir, FwCfgCmdline)
	if err := os.MkdirAll(entry, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		raw     string
		want    []string
		wantErr bool
	}{
		{"gantry.api-bridge console=ttyS0,115200n8\x00", []string{"gantry.api-bridge console=ttyS0,115200n8"}, false},
		{"  \n", nil, false},
		{"a\nb", nil, true},
	} {
		if err := os.WriteFile(filepath.Join(entry, "raw"), []byte(tt.raw), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFwCfgCmdline(dir)
		if (err != nil) != tt.wantErr || strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("ReadFwCfgCmdline(%q) = %q, %v", tt.raw, got, err)
		}
	}
}

// mkfsBoot makes a real BOOT file system image with mkfs.ext4 -d, as the
// image builder does, holding files.
func mkfsBoot(t *testing.T, files map[string]string) string {
	t.Helper()
	testsupport.RequireTool(t, "mkfs.ext4")
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "boot.img")
	out, err := exec.Command("mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-L", "GANTRY-BOOT", "-d", src, img, "4M").CombinedOutput()
	if err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	return img
}

// mountRO mounts an ext4 image read-only through a loop device, as the
// selector mounts the BOOT partition (read-only ext4). It needs root and
// loop devices; the test is skipped without them.
func mountRO(t *testing.T, img string, offset, size int64) string {
	t.Helper()
	testsupport.RequireRoot(t, "mounting a BOOT file system")
	dir := t.TempDir()
	opts := "loop,ro,noload"
	if size > 0 {
		opts += ",offset=" + strconv.FormatInt(offset, 10) + ",sizelimit=" + strconv.FormatInt(size, 10)
	}
	if out, err := exec.Command("mount", "-t", "ext4", "-o", opts, img, dir).CombinedOutput(); err != nil {
		testsupport.Missing(t, fmt.Sprintf("cannot loop-mount here (%v: %s)", err, out),
			"loop devices (modprobe loop; a container needs --privileged)")
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	return dir
}

func TestReadBootFiles(t *testing.T) {
	good := map[string]string{BootKernel: "kernel", BootInitrd: "initrd", BootCmdline: "quiet gantry.roothash=" + testHash + "\n"}
	with := func(name, content string) map[string]string {
		m := map[string]string{}
		for k, v := range good {
			m[k] = v
		}
		if content == "-" {
			delete(m, name)
		} else {
			m[name] = content
		}
		return m
	}
	for _, tt := range []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{"complete", good, ""},
		{"no kernel", with(BootKernel, "-"), "vmlinuz: no such file"},
		{"empty initramfs", with(BootInitrd, ""), "initrd.img is empty"},
		{"no command line", with(BootCmdline, "-"), "cmdline: no such file"},
		{"empty command line", with(BootCmdline, "\n"), "cmdline is empty"},
		{"no root hash", with(BootCmdline, "quiet"), "no gantry.roothash="},
		{"bad verity mode", with(BootCmdline, "gantry.verity=off gantry.roothash="+testHash), `gantry.verity="off"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := mountRO(t, mkfsBoot(t, tt.files), 0, 0)
			b, err := ReadBootFiles(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadBootFiles error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Kernel != filepath.Join(dir, BootKernel) || b.Initrd != filepath.Join(dir, BootInitrd) || b.Cmdline != "quiet gantry.roothash="+testHash {
				t.Errorf("ReadBootFiles = %+v", b)
			}
		})
	}
}

// TestSelectorOnDiskImage runs the selector's steps short of the kexec on
// a real disk image: the GPT's flags choose the set and lose a try, the
// chosen set's BOOT file system (real ext4 in its partition) is mounted
// read-only and read, a set whose BOOT cannot be read makes the choice
// move on, and the command line names the set that was loaded.
func TestSelectorOnDiskImage(t *testing.T) {
	l, err := disklayout.Plan(disklayout.Options{Rand: disklayout.SeededRand([]byte(t.Name()))})
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "os.img")
	if err := disklayout.WriteFile(img, l.OS); err != nil {
		t.Fatal(err)
	}
	setA, _ := l.OS.Partitions.Set(disklayout.SetA)
	setB, _ := l.OS.Partitions.Set(disklayout.SetB)
	// A holds a good BOOT; B, the new set with one try, holds garbage
	// (an update whose BOOT write was lost).
	bootA := mkfsBoot(t, map[string]string{BootKernel: "k", BootInitrd: "i", BootCmdline: "quiet gantry.roothash=" + testHash})
	data, err := os.ReadFile(bootA)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, setA.Boot.Start); err != nil {
		t.Fatal(err)
	}
	tab, err := disklayout.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	newB := gptprio.Prio{Priority: 2, TriesLeft: 1}
	if err := tab.SetAttributes(setB.Boot.Number, newB.Apply(0)); err != nil {
		t.Fatal(err)
	}
	if err := tab.SetAttributes(setA.Boot.Number, gptprio.Prio{Priority: 1, Successful: true}.Apply(0)); err != nil {
		t.Fatal(err)
	}
	if err := tab.WriteBack(f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var files BootFiles
	var tried []string
	c, failed, err := gptprio.Select(context.Background(), img, SelectAttempts, func(c gptprio.Choice) error {
		tried = append(tried, string(c.Set.ID))
		if c.Set.ID == disklayout.SetB {
			return errors.New("mount BOOT partition: invalid argument") // garbage is no ext4
		}
		var err error
		files, err = ReadBootFiles(mountRO(t, img, c.Set.Boot.Start, c.Set.Boot.Size))
		return err
	})
	if err != nil || c.Set.ID != disklayout.SetA || strings.Join(tried, "") != "BA" || len(failed) != 1 {
		t.Fatalf("selection: %s, failed %v, %v; tried %v", c.Set.ID, failed, err, tried)
	}
	got := NextCmdline(files.Cmdline, c.Set.Boot.GUID, []string{"gantry.api-bridge"})
	if want := "quiet gantry.roothash=" + testHash + " gantry.bootuuid=" + setA.Boot.GUID + " gantry.api-bridge"; got != want {
		t.Errorf("command line %q, want %q", got, want)
	}
	after, err := disklayout.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := after.Partitions().Set(disklayout.SetB)
	if p := gptprio.Of(b.Boot.Attributes); p != (gptprio.Prio{Priority: 2}) {
		t.Errorf("B after its try: %s, want priority 2 and no tries", p)
	}
}
