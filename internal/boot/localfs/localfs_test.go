package localfs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/internal/testsupport"
)

// needTools skips the test (fails it under CI) when e2fsprogs is missing.
func needTools(t *testing.T) {
	t.Helper()
	testsupport.RequireTools(t, DefaultMkfs, "debugfs", "dumpe2fs", "e2fsck")
}

// newImage writes a sparse disk image with the GPT of a small plan, and the
// name GANTRY-DATA on the preferred data partition as the image builder
// gives it. The OS disk is then extended by grow bytes past the plan (a
// disk larger than the image). It returns the OS disk and, for the split
// plan, the data disk.
func newImage(t *testing.T, plan disklayout.PartitionPlan, grow int64) (osDisk, dataDisk string) {
	t.Helper()
	l, err := disklayout.Plan(disklayout.Options{OSImageGiB: 1, DataImageGiB: 1, PartitionPlan: plan, Rand: disklayout.SeededRand([]byte("localfs-test"))})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	disks := []*disklayout.Disk{&l.OS}
	if l.Data != nil {
		disks = append(disks, l.Data)
	}
	var paths []string
	for i, d := range disks {
		for j, p := range d.Partitions {
			if p.Kind == disklayout.KindData && p.GUID == disklayout.DataPreferredGUID {
				d.Partitions[j].Name = disklayout.NameData
			}
		}
		path := filepath.Join(dir, "disk"+strconv.Itoa(i)+".img")
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := disklayout.WriteFile(path, *d); err != nil {
			t.Fatal(err)
		}
		// The disk grows after the image was written, so its backup GPT
		// is in the middle, as on a cloud volume made larger.
		if i == 0 && grow > 0 {
			if err := os.Truncate(path, d.Size+grow); err != nil {
				t.Fatal(err)
			}
		}
		paths = append(paths, path)
	}
	if len(paths) == 1 {
		return paths[0], ""
	}
	return paths[0], paths[1]
}

// entry returns the GPT entry named name on disk.
func entry(t *testing.T, disk, name string) disklayout.Partition {
	t.Helper()
	tab, err := disklayout.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := tab.Partitions().ByName(name)
	if !ok {
		t.Fatalf("%s: no partition %s", disk, name)
	}
	return p
}

// fsSpec is how e2fsprogs opens the filesystem of a partition of an image.
func fsSpec(t *testing.T, disk, name string) string {
	return disk + "?offset=" + strconv.FormatInt(entry(t, disk, name).Start, 10)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// putFile writes content as /name into the filesystem with debugfs.
func putFile(t *testing.T, fs, name, content string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(t, "debugfs", "-w", "-R", "write "+src+" "+name, fs)
	if strings.Contains(out, "ould not") || strings.Contains(out, "rror") {
		t.Fatalf("debugfs write: %s", out)
	}
}

// getFile returns /name of the filesystem, or "" when it is missing.
func getFile(t *testing.T, fs, name string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "cat /"+name, fs).Output()
	if err != nil {
		t.Fatalf("debugfs cat: %v", err)
	}
	return string(out)
}

// fsLabel is the label of the superblock at sb (0: the primary).
func fsLabel(t *testing.T, fs string, sb int) string {
	t.Helper()
	args := []string{"-h"}
	if sb != 0 {
		args = append(args, "-o", "superblock="+strconv.Itoa(sb), "-o", "blocksize=4096")
	}
	out := run(t, "dumpe2fs", append(args, fs)...)
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "Filesystem volume name:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("dumpe2fs: no volume name:\n%s", out)
	return ""
}

func fsck(t *testing.T, fs string) {
	t.Helper()
	run(t, "e2fsck", "-fn", fs)
}

func prepareDisk(t *testing.T, disk string) []Result {
	t.Helper()
	res, err := Prepare(context.Background(), Options{Disk: disk})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Name != disklayout.NamePrivate || res[1].Name != disklayout.NameData {
		t.Fatalf("results %+v", res)
	}
	return res
}

// TestFreshThenComplete: a fresh image gets two complete filesystems; a
// second run keeps them, with the files written in between.
func TestFreshThenComplete(t *testing.T) {
	needTools(t)
	disk, _ := newImage(t, disklayout.Unified, 0)
	for _, r := range prepareDisk(t, disk) {
		if r.Action != Formatted || r.Before != StateEmpty {
			t.Errorf("%s: %s from %s, want formatted from empty", r.Name, r.Action, r.Before)
		}
	}
	for _, name := range []string{disklayout.NamePrivate, disklayout.NameData} {
		fs := fsSpec(t, disk, name)
		fsck(t, fs)
		if l := fsLabel(t, fs, 0); l != name {
			t.Errorf("%s: label %q", name, l)
		}
		putFile(t, fs, "user-data", "kept "+name)
	}
	// DATA is made with the directories /var, /opt and /mnt bind-mount
	// from; PRIVATE with none.
	for name, want := range map[string]string{disklayout.NameData: "mnt,opt,var", disklayout.NamePrivate: ""} {
		out := run(t, "debugfs", "-R", "ls -l /", fsSpec(t, disk, name))
		var dirs []string
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 9 && f[1] == "40755" && f[8] != "." && f[8] != ".." && f[8] != "lost+found" {
				dirs = append(dirs, f[8])
			}
		}
		sort.Strings(dirs)
		if got := strings.Join(dirs, ","); got != want {
			t.Errorf("%s: directories %q, want %q\n%s", name, got, want, out)
		}
	}
	// DATA (1 GiB, 4 KiB blocks) has backups at groups 1 and 3.
	for _, sb := range []int{32768, 98304} {
		if l := fsLabel(t, fsSpec(t, disk, disklayout.NameData), sb); l != disklayout.NameData {
			t.Errorf("backup superblock %d: label %q", sb, l)
		}
	}
	for _, r := range prepareDisk(t, disk) {
		if r.Action != Kept || r.Before != StateReady || r.GrownFrom != 0 {
			t.Errorf("second run: %s: %s from %s (grown from %d), want kept", r.Name, r.Action, r.Before, r.GrownFrom)
		}
	}
	for _, name := range []string{disklayout.NamePrivate, disklayout.NameData} {
		if got := getFile(t, fsSpec(t, disk, name), "user-data"); got != "kept "+name {
			t.Errorf("%s after the second run: /user-data = %q", name, got)
		}
	}
	if err := disklayout.Verify(disk); err != nil {
		t.Error(err)
	}
}

// section opens the named partition of disk for reading and writing.
func openSection(t *testing.T, disk, name string) section {
	t.Helper()
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return section{f: f, off: entry(t, disk, name).Start}
}

// mkfsPending formats DATA as an interrupted run leaves it: mkfs done with
// the pending label, the final label never written. It puts a file in it.
func mkfsPending(t *testing.T, disk string) {
	t.Helper()
	p := entry(t, disk, disklayout.NameData)
	run(t, DefaultMkfs, "-q", "-F", "-t", "ext4", "-L", PendingLabel, "-E", "nodiscard,offset="+strconv.FormatInt(p.Start, 10),
		disk, strconv.FormatInt(p.Size/1024, 10)+"k")
	putFile(t, fsSpec(t, disk, disklayout.NameData), "half-made", "from the interrupted run")
}

// TestInterrupted: every state an interrupted format can leave is formatted
// again.
func TestInterrupted(t *testing.T) {
	needTools(t)
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, disk string)
		before State
	}{
		{"mkfs done, final label missing", mkfsPending, StatePending},
		{"garbage superblock", func(t *testing.T, disk string) {
			s := openSection(t, disk, disklayout.NameData)
			junk := []byte(strings.Repeat("\xa5\x5a not a filesystem ", 64))
			if _, err := s.WriteAt(junk, 0); err != nil {
				t.Fatal(err)
			}
		}, StateEmpty},
		{"mkfs cut short: primary superblock zeroed", func(t *testing.T, disk string) {
			mkfsPending(t, disk)
			s := openSection(t, disk, disklayout.NameData)
			if _, err := s.WriteAt(make([]byte, 4096), 0); err != nil {
				t.Fatal(err)
			}
		}, StateEmpty},
		{"torn label write: new label, old checksum", func(t *testing.T, disk string) {
			mkfsPending(t, disk)
			s := openSection(t, disk, disklayout.NameData)
			old, err := readSuperblock(s, sbOffset)
			if err != nil {
				t.Fatal(err)
			}
			if err := commitLabel(s, disklayout.NameData); err != nil {
				t.Fatal(err)
			}
			// Put back the superblock's second sector, which holds the
			// checksum: the disk wrote only the first.
			if _, err := s.WriteAt(old[512:], sbOffset+512); err != nil {
				t.Fatal(err)
			}
		}, StatePending},
		{"another filesystem", func(t *testing.T, disk string) {
			p := entry(t, disk, disklayout.NameData)
			run(t, DefaultMkfs, "-q", "-F", "-t", "ext4", "-L", "SOMETHING-ELSE", "-E", "nodiscard,offset="+strconv.FormatInt(p.Start, 10),
				disk, "65536k")
		}, StatePending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk, _ := newImage(t, disklayout.Unified, 0)
			tc.damage(t, disk)
			res := prepareDisk(t, disk)
			if r := res[1]; r.Action != Formatted || r.Before != tc.before {
				t.Errorf("DATA: %s from %s, want formatted from %s", r.Action, r.Before, tc.before)
			}
			fs := fsSpec(t, disk, disklayout.NameData)
			fsck(t, fs)
			if l := fsLabel(t, fs, 0); l != disklayout.NameData {
				t.Errorf("label %q", l)
			}
			if got := getFile(t, fs, "half-made"); got != "" {
				t.Errorf("the new filesystem still has the interrupted run's file: %q", got)
			}
		})
	}
}

// TestDamagedIsNeverFormatted: a complete filesystem whose superblock is
// damaged is refused, and its data is left where it is.
func TestDamagedIsNeverFormatted(t *testing.T) {
	needTools(t)
	for _, tc := range []struct {
		name   string
		damage func(s section)
	}{
		{"checksum mismatch", func(s section) { s.WriteAt([]byte{1, 2, 3, 4}, sbOffset+sbChecksum) }},
		{"primary superblock gone, backup labelled", func(s section) { s.WriteAt(make([]byte, sbSize), sbOffset) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk, _ := newImage(t, disklayout.Unified, 0)
			prepareDisk(t, disk)
			fs := fsSpec(t, disk, disklayout.NameData)
			putFile(t, fs, "precious", "user data")
			tc.damage(openSection(t, disk, disklayout.NameData))
			_, err := Prepare(context.Background(), Options{Disk: disk})
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "GANTRY-DATA") {
				t.Fatalf("Prepare = %v, want ErrDamaged naming GANTRY-DATA", err)
			}
			// e2fsck repairs it from a backup (named: its automatic search
			// does not work at an offset), and the data is there.
			if out, err := exec.Command("e2fsck", "-fy", "-b", "32768", "-B", "4096", fs).CombinedOutput(); err != nil {
				// Exit 1: errors corrected.
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
					t.Fatalf("e2fsck: %v\n%s", err, out)
				}
			}
			if got := getFile(t, fs, "precious"); got != "user data" {
				t.Errorf("after e2fsck: /precious = %q", got)
			}
			if r := prepareDisk(t, disk); r[1].Action != Kept {
				t.Errorf("after e2fsck: DATA %s", r[1].Action)
			}
		})
	}
}

// TestBackupsLabelledLater: a crash after the primary's label but before
// the backups' leaves a complete filesystem; the next run labels the
// backups and formats nothing.
func TestBackupsLabelledLater(t *testing.T) {
	needTools(t)
	disk, _ := newImage(t, disklayout.Unified, 0)
	mkfsPending(t, disk)
	s := openSection(t, disk, disklayout.NameData)
	sb, err := readSuperblock(s, sbOffset)
	if err != nil {
		t.Fatal(err)
	}
	sb.setLabel(disklayout.NameData)
	sb.updateChecksum()
	if _, err := s.WriteAt(sb, sbOffset); err != nil {
		t.Fatal(err)
	}
	fs := fsSpec(t, disk, disklayout.NameData)
	if l := fsLabel(t, fs, 32768); l != PendingLabel {
		t.Fatalf("backup label %q before the run", l)
	}
	if r := prepareDisk(t, disk); r[1].Action != Kept {
		t.Errorf("DATA %s, want kept", r[1].Action)
	}
	if got := getFile(t, fs, "half-made"); got == "" {
		t.Error("the file is gone: DATA was formatted")
	}
	if l := fsLabel(t, fs, 32768); l != disklayout.NameData {
		t.Errorf("backup label %q after the run", l)
	}
	fsck(t, fs)
}

// TestGrow: on a disk larger than the image, DATA (the last partition)
// grows to the disk's end, less the last MiB for the backup GPT, before it
// is formatted; a complete DATA is never grown.
func TestGrow(t *testing.T) {
	needTools(t)
	const extra = 512 << 20
	disk, _ := newImage(t, disklayout.Unified, extra)
	before := entry(t, disk, disklayout.NameData)
	res := prepareDisk(t, disk)
	fi, _ := os.Stat(disk)
	after := entry(t, disk, disklayout.NameData)
	if after.Start != before.Start || after.End() != fi.Size()-disklayout.MiB {
		t.Errorf("DATA %d–%d on a %d-byte disk, want it to end 1 MiB before the end", after.Start, after.End(), fi.Size())
	}
	if res[1].GrownFrom != before.Size || res[1].Size != after.Size {
		t.Errorf("result %+v", res[1])
	}
	if err := disklayout.Verify(disk); err != nil {
		t.Error(err)
	}
	fs := fsSpec(t, disk, disklayout.NameData)
	fsck(t, fs)
	out := run(t, "dumpe2fs", "-h", fs)
	blocks := 0
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "Block count:"); ok {
			blocks, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	// mke2fs drops a last block group too small to hold its own metadata.
	if fsSize := int64(blocks) * 4096; fsSize > after.Size || fsSize < after.Size-128<<20 || fsSize <= before.Size {
		t.Errorf("filesystem of %d bytes in a %d-byte partition (was %d)", fsSize, after.Size, before.Size)
	}

	// Grow the disk again: the complete DATA stays as it is.
	if err := os.Truncate(disk, fi.Size()+extra); err != nil {
		t.Fatal(err)
	}
	if r := prepareDisk(t, disk); r[1].Action != Kept || r[1].GrownFrom != 0 {
		t.Errorf("on a larger disk again: %+v", r[1])
	}
	if e := entry(t, disk, disklayout.NameData); e.Size != after.Size {
		t.Errorf("complete DATA grew from %d to %d", after.Size, e.Size)
	}
}

// TestSplitPlan: DATA on its own disk, named with --data-disk; it is the
// data disk's only partition and is not grown on an image-sized disk.
func TestSplitPlan(t *testing.T) {
	needTools(t)
	osDisk, dataDisk := newImage(t, disklayout.Split, 0)
	if _, err := Prepare(context.Background(), Options{Disk: osDisk}); err == nil || !strings.Contains(err.Error(), "--data-disk") {
		t.Errorf("without the data disk: %v", err)
	}
	res, err := Prepare(context.Background(), Options{Disk: osDisk, DataDisk: dataDisk})
	if err != nil {
		t.Fatal(err)
	}
	if res[1].Device != dataDisk || res[1].Action != Formatted || res[1].GrownFrom != 0 {
		t.Errorf("DATA: %+v", res[1])
	}
	fsck(t, fsSpec(t, dataDisk, disklayout.NameData))
}

// TestNodeDiscovery finds the boot disk from the root's device through a
// sysfs tree, as on a node, and the split plan's data disk among the other
// disks; the disks are image files standing in for /dev/vda and /dev/vdb.
func TestNodeDiscovery(t *testing.T) {
	needTools(t)
	osDisk, dataDisk := newImage(t, disklayout.Split, 0)
	root := t.TempDir()
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		t.Fatal(err)
	}
	major, minor := unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev))
	sys, dev := t.TempDir(), t.TempDir()
	mk := func(path, content string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if content != "" {
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	link := func(target, path string) {
		mk(path, "")
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
	}
	devices := filepath.Join(sys, "devices")
	mk(filepath.Join(devices, "virtual/block/dm-0/slaves/vda4/.keep"), "x")
	mk(filepath.Join(devices, "pci/vda/vda4/partition"), "4\n")
	mk(filepath.Join(devices, "pci/vdb/size"), "0\n")
	mk(filepath.Join(devices, "sr0/size"), "0\n")
	link(filepath.Join(devices, "virtual/block/dm-0"), filepath.Join(sys, "dev/block", strconv.Itoa(int(major))+":"+strconv.Itoa(int(minor))))
	link(filepath.Join(devices, "pci/vda/vda4"), filepath.Join(sys, "class/block/vda4"))
	for _, d := range []string{"vda", "vdb", "sr0"} {
		link(filepath.Join(devices, "pci", d), filepath.Join(sys, "block", d))
	}
	for name, img := range map[string]string{"vda": osDisk, "vdb": dataDisk} {
		if err := os.Symlink(img, filepath.Join(dev, name)); err != nil {
			t.Fatal(err)
		}
	}
	links := filepath.Join(t.TempDir(), "run", "partitions")
	fm := &fakeMounter{}
	res, err := Prepare(context.Background(), Options{Sys: sys, Dev: dev, Root: root, LinkDir: links, Mount: true, mounter: fm})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Device != filepath.Join(dev, "vda") || res[1].Device != filepath.Join(dev, "vdb") {
		t.Errorf("devices %s and %s", res[0].Device, res[1].Device)
	}
	if want := []string{"/local", "/var", "/opt", "/mnt", "/var/lib/gantry"}; !slices.Equal(fm.calls, want) {
		t.Errorf("--mount mounted %v, want %v", fm.calls, want)
	}
	// The mount units mount from the links, made once each is prepared.
	for name, want := range map[string]string{disklayout.NamePrivate: res[0].Device, disklayout.NameData: res[1].Device} {
		if got, err := os.Readlink(filepath.Join(links, name)); err != nil || got != want {
			t.Errorf("link %s -> %q (%v), want %s", name, got, err, want)
		}
	}
	fsck(t, fsSpec(t, dataDisk, disklayout.NameData))

	// A second data disk makes the choice ambiguous.
	_, otherData := newImage(t, disklayout.Split, 0)
	mk(filepath.Join(devices, "pci/vdc/size"), "0\n")
	link(filepath.Join(devices, "pci/vdc"), filepath.Join(sys, "block/vdc"))
	if err := os.Symlink(otherData, filepath.Join(dev, "vdc")); err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(context.Background(), Options{Sys: sys, Dev: dev, Root: root}); err == nil || !strings.Contains(err.Error(), "refusing to guess") {
		t.Errorf("two data disks: %v", err)
	}
}

// TestErrors: bad input is refused with the reason, nothing is formatted.
func TestErrors(t *testing.T) {
	needTools(t)
	for _, tc := range []struct {
		name, want string
		disk       func(t *testing.T) string
	}{
		{"missing disk", "no such file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope.img") }},
		{"no GPT", "read GPT", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "blank.img")
			os.WriteFile(p, nil, 0o644)
			os.Truncate(p, 8<<20)
			return p
		}},
		{"no PRIVATE", "no partition named GANTRY-PRIVATE", func(t *testing.T) string {
			l, err := disklayout.Plan(disklayout.Options{OSImageGiB: 1, DataImageGiB: 1, PartitionPlan: disklayout.Unified})
			if err != nil {
				t.Fatal(err)
			}
			for i := range l.OS.Partitions {
				if l.OS.Partitions[i].Kind == disklayout.KindPrivate {
					l.OS.Partitions[i].Name = "SOMETHING"
				}
			}
			p := filepath.Join(t.TempDir(), "d.img")
			if err := disklayout.WriteFile(p, l.OS); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"DATA name on a partition of another type", "is not a DATA partition", func(t *testing.T) string {
			l, err := disklayout.Plan(disklayout.Options{OSImageGiB: 1, DataImageGiB: 1, PartitionPlan: disklayout.Unified})
			if err != nil {
				t.Fatal(err)
			}
			for i := range l.OS.Partitions {
				if l.OS.Partitions[i].Kind == disklayout.KindReserved && l.OS.Partitions[i].Set == disklayout.SetB {
					l.OS.Partitions[i].Name = disklayout.NameData
				}
			}
			p := filepath.Join(t.TempDir(), "d.img")
			if err := disklayout.WriteFile(p, l.OS); err != nil {
				t.Fatal(err)
			}
			return p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runMain(t, "--disk", tc.disk(t))
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, tc.want)
			}
		})
	}
	if code, stderr := runMain(t, "--bogus"); code != 2 || !strings.Contains(stderr, "unknown flag") {
		t.Errorf("bad flag: exit %d %q", code, stderr)
	}
	if code, stderr := runMain(t, "--disk", "x", "extra"); code != 2 {
		t.Errorf("extra argument: exit %d %q", code, stderr)
	}
}

// runMain runs the command as Main does, with stderr captured.
func runMain(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stderr bytes.Buffer
	code := cli.Execute(context.Background(), NewCommand(), args, &stderr)
	return code, stderr.String()
}
