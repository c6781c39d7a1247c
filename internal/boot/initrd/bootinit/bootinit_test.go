package bootinit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/update/signpost"
)

var hashA = strings.Repeat("ab", 32)

func TestSplitCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  console=ttyS0   quiet\n", []string{"console=ttyS0", "quiet"}},
		{`a="b c" "d=e f" g`, []string{"a=b c", "d=e f", "g"}},
		{`x="" y`, []string{"x=", "y"}},
		{"a -- gantry.set=B b", []string{"a"}},
	} {
		got := SplitCmdline(tc.in)
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
			t.Errorf("SplitCmdline(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    Cmdline
		wantErr string
	}{
		{"defaults", "console=ttyS0 gantry.roothash=" + hashA,
			Cmdline{RootHash: hashA, Init: "/sbin/init", Verity: VerityRestart}, ""},
		{"everything", "gantry.roothash=" + strings.ToUpper(hashA) + " gantry.set=b gantry.init=/bin/test gantry.verity=panic gantry.bootuuid=abc",
			Cmdline{RootHash: hashA, Set: disklayout.SetB, BootUUID: "ABC", Init: "/bin/test", Verity: VerityPanic}, ""},
		{"last wins", "gantry.set=A gantry.roothash=00 gantry.set=B gantry.roothash=" + hashA,
			Cmdline{RootHash: hashA, Set: disklayout.SetB, Init: "/sbin/init", Verity: VerityRestart}, ""},
		{"unknown gantry parameter warns", "gantry.roothash=" + hashA + " gantry.foo=1",
			Cmdline{RootHash: hashA, Init: "/sbin/init", Verity: VerityRestart, Warnings: []string{`unknown kernel parameter "gantry.foo" ignored`}}, ""},
		{"the booted system's parameter is known", "gantry.roothash=" + hashA + " gantry.api-bridge",
			Cmdline{RootHash: hashA, Init: "/sbin/init", Verity: VerityRestart}, ""},
		{"after -- is init's", "gantry.roothash=" + hashA + " -- gantry.set=X",
			Cmdline{RootHash: hashA, Init: "/sbin/init", Verity: VerityRestart}, ""},
		{"missing root hash", "console=ttyS0", Cmdline{}, "refusing to boot"},
		{"empty root hash", "gantry.roothash=", Cmdline{}, "refusing to boot"},
		{"root hash after --", "-- gantry.roothash=" + hashA, Cmdline{}, "refusing to boot"},
		{"short root hash", "gantry.roothash=abcd", Cmdline{}, "64 hex digits"},
		{"non-hex root hash", "gantry.roothash=" + strings.Repeat("zz", 32), Cmdline{}, "64 hex digits"},
		{"bad set", "gantry.roothash=" + hashA + " gantry.set=C", Cmdline{}, "invalid partition set"},
		{"relative init", "gantry.roothash=" + hashA + " gantry.init=sbin/init", Cmdline{}, "absolute path"},
		{"bad verity mode", "gantry.roothash=" + hashA + " gantry.verity=ignore", Cmdline{}, "restart, panic or eio"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCmdline(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if _, err := ParseCmdline(""); !errors.Is(err, ErrNoRootHash) {
		t.Errorf("missing root hash: %v is not ErrNoRootHash", err)
	}
}

func TestVerityModeOption(t *testing.T) {
	for m, want := range map[VerityMode]string{VerityRestart: "restart_on_corruption", VerityPanic: "panic_on_corruption", VerityEIO: ""} {
		if got := m.TableOption(); got != want {
			t.Errorf("%s: %q, want %q", m, got, want)
		}
	}
}

func plan(t *testing.T, single bool) *disklayout.Layout {
	t.Helper()
	l, err := disklayout.Plan(disklayout.Options{Rand: disklayout.SeededRand([]byte("bootinit")), SingleBank: single})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func withPrio(ps disklayout.Partitions, a, b signpost.Prio) disklayout.Partitions {
	out := append(disklayout.Partitions(nil), ps...)
	boots := 0
	for i := range out {
		if out[i].Type == disklayout.TypeBoot {
			p := a
			if boots == 1 {
				p = b
			}
			out[i].Attributes = p.Apply(out[i].Attributes)
			boots++
		}
	}
	return out
}

func TestChooseSet(t *testing.T) {
	ps := plan(t, false).OS.Partitions
	bootB, _ := ps.ByRole("BOOT-B")
	good := signpost.Prio{Priority: 1, Successful: true}
	trial := signpost.Prio{Priority: 2, TriesLeft: 1}
	for _, tc := range []struct {
		name     string
		a, b     signpost.Prio
		cmd      Cmdline
		want     disklayout.SetID
		wantWhy  string
		wantErr  string
		singleOK bool
	}{
		{"new image boots A", signpost.PrioOf(disklayout.BootAAttributes), signpost.Prio{}, Cmdline{}, "A", "GPT flags", "", false},
		{"upgrade tries B", good, trial, Cmdline{}, "B", "GPT flags", "", false},
		{"B out of tries falls back to A", good, signpost.Prio{Priority: 2}, Cmdline{}, "A", "GPT flags", "", false},
		{"tie goes to A", good, good, Cmdline{}, "A", "GPT flags", "", false},
		{"forced set wins over flags", good, trial, Cmdline{Set: "A"}, "A", "gantry.set=A", "", false},
		{"boot uuid names B", good, signpost.Prio{Priority: 2}, Cmdline{BootUUID: strings.ToLower(bootB.GUID)}, "B", "gantry.bootuuid", "", false},
		{"unknown boot uuid", good, good, Cmdline{BootUUID: "00000000-0000-0000-0000-000000000000"}, "", "", "no BOOT partition has GUID", false},
		{"nothing bootable", signpost.Prio{Successful: true}, signpost.Prio{Priority: 3}, Cmdline{}, "", "", "no set is bootable", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, why, err := ChooseSet(withPrio(ps, tc.a, tc.b), tc.cmd)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.ID != tc.want || !strings.Contains(why, tc.wantWhy) {
				t.Errorf("set %s (%s), want %s (%s)", s.ID, why, tc.want, tc.wantWhy)
			}
			if s.Root.Number != s.Boot.Number+1 || s.Hash.Number != s.Boot.Number+2 {
				t.Errorf("set %+v", s)
			}
		})
	}
	single := plan(t, true).OS.Partitions
	if _, _, err := ChooseSet(single, Cmdline{Set: "B"}); err == nil {
		t.Error("forcing set B on a single-set disk succeeded")
	}
	if s, _, err := ChooseSet(single, Cmdline{}); err != nil || s.ID != "A" {
		t.Errorf("single-set disk: %v %v", s.ID, err)
	}
}

// TestNextSetMatchesSignpost checks the reimplementation against signpost's
// Next on a real GPT for every combination of small flag values.
func TestNextSetMatchesSignpost(t *testing.T) {
	l := plan(t, false)
	img := filepath.Join(t.TempDir(), "os.img")
	if err := disklayout.WriteFile(img, l.OS); err != nil {
		t.Fatal(err)
	}
	var prios []signpost.Prio
	for p := range 3 {
		for tries := range 2 {
			for _, ok := range []bool{false, true} {
				prios = append(prios, signpost.Prio{Priority: p, TriesLeft: tries, Successful: ok})
			}
		}
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tbl, err := disklayout.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	bootA, _ := tbl.Partitions().ByRole("BOOT-A")
	bootB, _ := tbl.Partitions().ByRole("BOOT-B")
	for _, a := range prios {
		for _, b := range prios {
			tbl.SetAttributes(bootA.Number, a.Apply(bootA.Attributes))
			tbl.SetAttributes(bootB.Number, b.Apply(bootB.Attributes))
			if err := tbl.WriteBack(f); err != nil {
				t.Fatal(err)
			}
			st, err := signpost.Load(img, "")
			if err != nil {
				t.Fatal(err)
			}
			wantID, wantOK := st.Next()
			gotID, gotOK, err := NextSet(tbl.Partitions())
			if err != nil || gotID != wantID || gotOK != wantOK {
				t.Errorf("A %s, B %s: NextSet = %s %v %v, signpost says %s %v", a, b, gotID, gotOK, err, wantID, wantOK)
			}
		}
	}
}

// fakeSys builds a /sys/block and /dev pair with the disk images given by
// name, each partition described as the kernel would.
type fakeSys struct {
	Paths
}

func newFakeSys(t *testing.T) *fakeSys {
	d := t.TempDir()
	p := Paths{SysBlock: filepath.Join(d, "sys/block"), Dev: filepath.Join(d, "dev")}
	os.MkdirAll(p.SysBlock, 0o755)
	os.MkdirAll(p.Dev, 0o755)
	return &fakeSys{p}
}

func (f *fakeSys) addDisk(t *testing.T, name string, disk *disklayout.Disk, sep string, skip map[int]bool, shift int64) {
	t.Helper()
	os.MkdirAll(filepath.Join(f.SysBlock, name), 0o755)
	if disk == nil {
		os.WriteFile(filepath.Join(f.Dev, name), make([]byte, 4<<20), 0o644)
		return
	}
	if err := disklayout.WriteFile(filepath.Join(f.Dev, name), *disk); err != nil {
		t.Fatal(err)
	}
	for _, p := range disk.Partitions {
		if skip[p.Number] {
			continue
		}
		pn := fmt.Sprintf("%s%s%d", name, sep, p.Number)
		dir := filepath.Join(f.SysBlock, name, pn)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "partition"), []byte(fmt.Sprintf("%d\n", p.Number)), 0o644)
		os.WriteFile(filepath.Join(dir, "start"), []byte(fmt.Sprintf("%d\n", p.Start/512+shift)), 0o644)
		os.WriteFile(filepath.Join(dir, "size"), []byte(fmt.Sprintf("%d\n", p.Size/512)), 0o644)
		os.WriteFile(filepath.Join(dir, "dev"), []byte(fmt.Sprintf("254:%d\n", p.Number)), 0o644)
		os.WriteFile(filepath.Join(f.Dev, pn), nil, 0o644)
	}
	// Non-partition entries sysfs also has.
	os.MkdirAll(filepath.Join(f.SysBlock, name, "queue"), 0o755)
	os.WriteFile(filepath.Join(f.SysBlock, name, "size"), []byte("1\n"), 0o644)
}

func TestFindDisk(t *testing.T) {
	l := plan(t, false)
	data := l.Data
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, f *fakeSys)
		want    string
		wantErr string
	}{
		{"virtio disk among others", func(t *testing.T, f *fakeSys) {
			f.addDisk(t, "loop0", nil, "", nil, 0)
			f.addDisk(t, "vdb", data, "", nil, 0)
			f.addDisk(t, "vdc", nil, "", nil, 0)
			f.addDisk(t, "vda", &l.OS, "", nil, 0)
		}, "vda", ""},
		{"nvme naming", func(t *testing.T, f *fakeSys) { f.addDisk(t, "nvme0n1", &l.OS, "p", nil, 0) }, "nvme0n1", ""},
		{"no disk", func(t *testing.T, f *fakeSys) { f.addDisk(t, "vdb", data, "", nil, 0) }, "", "no GANTRY-ROOT-A partition"},
		{"partitions not yet probed", func(t *testing.T, f *fakeSys) { f.addDisk(t, "vda", &l.OS, "", map[int]bool{5: true}, 0) }, "", "not yet known to the kernel"},
		{"kernel disagrees with GPT", func(t *testing.T, f *fakeSys) { f.addDisk(t, "vda", &l.OS, "", nil, 8) }, "", "differs from GPT entry"},
		{"two OS disks", func(t *testing.T, f *fakeSys) {
			f.addDisk(t, "vda", &l.OS, "", nil, 0)
			f.addDisk(t, "vdb", &l.OS, "", nil, 0)
		}, "", "refusing to guess"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSys(t)
			tc.setup(t, f)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			d, err := FindDisk(ctx, f.Paths, 10*time.Millisecond)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Name != tc.want || d.Path != filepath.Join(f.Dev, tc.want) {
				t.Fatalf("found %s (%s)", d.Name, d.Path)
			}
			set, _, err := ChooseSet(d.Partitions, Cmdline{})
			if err != nil {
				t.Fatal(err)
			}
			root, err := d.Partition(set.Root.Number)
			if err != nil {
				t.Fatal(err)
			}
			sep := ""
			if strings.HasPrefix(tc.want, "nvme") {
				sep = "p"
			}
			if root.Name != tc.want+sep+"4" || root.DevNum() != "254:4" || root.Start != set.Root.Start || root.Size != set.Root.Size {
				t.Errorf("root device %+v", root)
			}
			if _, err := d.Partition(99); err == nil {
				t.Error("Partition(99) succeeded")
			}
		})
	}
}

func TestFindDiskWaits(t *testing.T) {
	l := plan(t, false)
	f := newFakeSys(t)
	// The disk appears all at once, as the kernel's uevent would make it.
	staging := newFakeSys(t)
	staging.addDisk(t, "vda", &l.OS, "", nil, 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(50 * time.Millisecond)
		ents, _ := os.ReadDir(staging.Dev)
		for _, e := range ents {
			os.Rename(filepath.Join(staging.Dev, e.Name()), filepath.Join(f.Dev, e.Name()))
		}
		os.Rename(filepath.Join(staging.SysBlock, "vda"), filepath.Join(f.SysBlock, "vda"))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := FindDisk(ctx, f.Paths, 5*time.Millisecond)
	<-done
	if err != nil || d.Name != "vda" {
		t.Fatalf("FindDisk = %v, %v", d, err)
	}
}

func TestCopyTree(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(src, "systemd/system"), 0o750)
	os.WriteFile(filepath.Join(src, "hostname"), []byte("gantry\n"), 0o644)
	os.WriteFile(filepath.Join(src, "shadow"), []byte("root:*:1::::::\n"), 0o600)
	os.WriteFile(filepath.Join(src, "systemd/system/x.service"), []byte("[Unit]\n"), 0o644)
	os.Symlink("../usr/lib/os-release", filepath.Join(src, "os-release"))
	if err := CopyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, content string
		mode          os.FileMode
	}{
		{"hostname", "gantry\n", 0o644},
		{"shadow", "root:*:1::::::\n", 0o600},
		{"systemd/system/x.service", "[Unit]\n", 0o644},
	} {
		b, err := os.ReadFile(filepath.Join(dst, c.path))
		fi, _ := os.Stat(filepath.Join(dst, c.path))
		if err != nil || string(b) != c.content || fi.Mode().Perm() != c.mode {
			t.Errorf("%s: %q %v %v", c.path, b, fi.Mode(), err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dst, "systemd")); fi == nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("directory mode not kept: %v", fi)
	}
	if l, err := os.Readlink(filepath.Join(dst, "os-release")); err != nil || l != "../usr/lib/os-release" {
		t.Errorf("symlink: %q %v", l, err)
	}
	// A second copy over the result fails rather than silently merging files.
	if err := CopyTree(src, dst); err == nil {
		t.Error("copying over existing files succeeded")
	}
}
