package disklayout

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/testsupport"
)

// writeImage plans opts and writes the OS disk (and data disk, if any) into
// sparse files in a temporary directory.
func writeImage(t *testing.T, opts Options) (*Layout, string, string) {
	t.Helper()
	l, err := Plan(opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	osImg := filepath.Join(dir, "os.img")
	if err := WriteFile(osImg, l.OS); err != nil {
		t.Fatal(err)
	}
	var dataImg string
	if l.Data != nil {
		dataImg = filepath.Join(dir, "data.img")
		if err := WriteFile(dataImg, *l.Data); err != nil {
			t.Fatal(err)
		}
	}
	return l, osImg, dataImg
}

func TestWriteReadRoundTrip(t *testing.T) {
	for name, opts := range map[string]Options{
		"default":             {},
		"4 GiB unified":       {OSImageGiB: 4, PartitionPlan: Unified, DataImageGiB: 2},
		"single bank":         {SingleBank: true},
		"seeded, 20 GiB data": {Rand: SeededRand([]byte("x")), DataImageGiB: 20},
	} {
		t.Run(name, func(t *testing.T) {
			l, osImg, dataImg := writeImage(t, opts)
			for _, c := range []struct {
				path string
				disk *Disk
			}{{osImg, &l.OS}, {dataImg, l.Data}} {
				if c.disk == nil {
					continue
				}
				if err := Verify(c.path); err != nil {
					t.Fatal(err)
				}
				tab, err := ReadFile(c.path)
				if err != nil {
					t.Fatal(err)
				}
				if tab.Size != c.disk.Size || tab.SectorSize != 512 || tab.GUID != c.disk.GUID || tab.RecoveredFromBackup {
					t.Errorf("table %d bytes, %d-byte sectors, GUID %s, recovered %v; want %d, 512, %s, false",
						tab.Size, tab.SectorSize, tab.GUID, tab.RecoveredFromBackup, c.disk.Size, c.disk.GUID)
				}
				got, want := tab.Partitions(), c.disk.Partitions
				if len(got) != len(want) {
					t.Fatalf("read %d partitions, wrote %d", len(got), len(want))
				}
				for i := range want {
					if got[i] != want[i] {
						t.Errorf("entry %d:\n read %+v\nwrote %+v", i+1, got[i], want[i])
					}
				}
			}
		})
	}
}

// TestOnDiskByteOrder checks the mixed-endian GUID encoding against the bytes
// Bottlerocket's type GUIDs are known to spell.
func TestOnDiskByteOrder(t *testing.T) {
	l, osImg, _ := writeImage(t, Options{})
	raw := readAt(t, osImg, 0, MiB)
	entry := func(n int) []byte { return raw[2*512+(n-1)*128 : 2*512+n*128] }
	if got := string(entry(1)[:16]); got != "Hah!IdontNeedEFI" {
		t.Errorf("BIOS-BOOT type bytes %q", got)
	}
	if got := string(entry(3)[:16]); got != "hack the planet!" {
		t.Errorf("BOOT-A type bytes %q", got)
	}
	// The data type's text form reads "bottledtharmarks" as hex; on disk the
	// first three fields are swapped.
	if got := string(entry(13)[:16]); got != "ttobeltdharmarks" {
		t.Errorf("DATA-A type bytes %q", got)
	}
	want, err := guidToDisk(l.OS.Partitions[2].GUID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(entry(3)[16:32], want[:]) || guidFromDisk(entry(3)[16:32]) != l.OS.Partitions[2].GUID {
		t.Errorf("BOOT-A unique GUID bytes % x do not encode %s", entry(3)[16:32], l.OS.Partitions[2].GUID)
	}
	// Protective MBR: one 0xEE partition from LBA 1 over the whole disk.
	if raw[446+4] != 0xee || raw[510] != 0x55 || raw[511] != 0xaa {
		t.Errorf("no protective MBR")
	}
}

// sfdiskDump runs `sfdisk --dump` and returns its partition lines by number.
func sfdiskDump(t *testing.T, img string) map[int]map[string]string {
	t.Helper()
	out, err := exec.Command("sfdisk", "--dump", img).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk --dump: %v\n%s", err, out)
	}
	line := regexp.MustCompile(`^\S+?(\d+) : (.*)$`)
	field := regexp.MustCompile(`(\w[\w-]*)=\s*("[^"]*"|[^,]+)`)
	parts := map[int]map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		parts[n] = map[string]string{}
		for _, f := range field.FindAllStringSubmatch(m[2], -1) {
			parts[n][f[1]] = strings.Trim(f[2], `"`)
		}
	}
	return parts
}

// TestCrossCheckWithSfdiskAndSgdisk reads the written table with util-linux
// and gdisk, when installed.
func TestCrossCheckWithSfdiskAndSgdisk(t *testing.T) {
	testsupport.RequireTool(t, "sfdisk")
	l, osImg, _ := writeImage(t, Options{})
	parts := sfdiskDump(t, osImg)
	if len(parts) != len(l.OS.Partitions) {
		t.Fatalf("sfdisk sees %d partitions, want %d", len(parts), len(l.OS.Partitions))
	}
	for _, p := range l.OS.Partitions {
		got := parts[p.Number]
		want := map[string]string{
			"start": strconv.FormatInt(p.Start/512, 10),
			"size":  strconv.FormatInt(p.Size/512, 10),
			"type":  p.Type,
			"uuid":  p.GUID,
			"name":  p.Name,
		}
		if p.Role() == "BOOT-A" {
			want["attrs"] = "GUID:48,56"
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("partition %d (%s): sfdisk %s=%q, want %q", p.Number, p.Role(), k, got[k], v)
			}
		}
		if _, ok := got["attrs"]; ok && p.Role() != "BOOT-A" {
			t.Errorf("partition %d (%s) has attrs %q", p.Number, p.Role(), got["attrs"])
		}
	}
	testsupport.RequireTool(t, "sgdisk")
	out, err := exec.Command("sgdisk", "-v", osImg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	out, err = exec.Command("sgdisk", "-i", "8", osImg).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk -i 8: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Partition GUID code: " + TypeBoot,
		"Partition unique GUID: " + l.OS.Partitions[7].GUID,
		"First sector: 2107392 (at 1.0 GiB)", // 1029 MiB
		"Attribute flags: 0000000000000000",
		"Partition name: 'GANTRY-BOOT-B'",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("sgdisk -i 8 lacks %q:\n%s", want, out)
		}
	}
}

// TestReadSgdiskImage builds the table with sgdisk the way Bottlerocket's
// image build does, and reads it back.
func TestReadSgdiskImage(t *testing.T) {
	testsupport.RequireTool(t, "sgdisk")
	l, err := Plan(Options{})
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "sgdisk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, l.OS.Size); err != nil {
		t.Fatal(err)
	}
	args := []string{"--clear", "--disk-guid=" + l.OS.GUID}
	for _, p := range l.OS.Partitions {
		args = append(args,
			fmt.Sprintf("-n0:%dM:%d", p.StartMiB(), p.End()/512-1),
			"-c0:"+p.Name, "-t0:"+p.Type, "-u0:"+p.GUID)
		switch p.Role() {
		case "BOOT-A":
			args = append(args, "-A0:set:48", "-A0:set:56")
		case "BOOT-B":
			args = append(args, "-A0:clear:48", "-A0:clear:56")
		}
	}
	args = append(args, "--sort", img)
	if out, err := exec.Command("sgdisk", args...).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
	if err := Verify(img); err != nil {
		t.Fatal(err)
	}
	tab, err := ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	got := tab.Partitions()
	for i, want := range l.OS.Partitions {
		if got[i] != want {
			t.Errorf("entry %d:\n   read %+v\nplanned %+v", i+1, got[i], want)
		}
	}
}

func TestWriteOntoLargerFileAndDevice(t *testing.T) {
	l, err := Plan(Options{})
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "big.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, l.OS.Size+64*MiB); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(img, l.OS); err != nil {
		t.Fatal(err)
	}
	if err := Verify(img); err != nil {
		t.Fatal(err)
	}
	tab, err := ReadFile(img)
	if err != nil || tab.Size != l.OS.Size+64*MiB {
		t.Fatalf("read %v, %v", tab, err)
	}

	// A disk that grows after the table was written keeps a readable table
	// whose backup is no longer at the end; Verify says so.
	if err := os.Truncate(img, l.OS.Size+128*MiB); err != nil {
		t.Fatal(err)
	}
	if err := Verify(img); err == nil || !strings.Contains(err.Error(), "not at the disk's last LBA") {
		t.Errorf("Verify of a grown disk: %v", err)
	}
	if tab, err := ReadFile(img); err != nil || len(tab.Partitions()) != 13 {
		t.Errorf("ReadFile of a grown disk: %v", err)
	}

	// A too-small open file (standing in for a device) is refused by Write.
	small := filepath.Join(t.TempDir(), "small.img")
	f, err := os.Create(small)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(l.OS.Size - MiB); err != nil {
		t.Fatal(err)
	}
	if err := Write(f, l.OS); err == nil || !strings.Contains(err.Error(), "the layout needs") {
		t.Errorf("Write onto a small disk: %v", err)
	}
}

// corrupt flips one byte of path at off.
func corrupt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyAndRepair(t *testing.T) {
	l, osImg, _ := writeImage(t, Options{})
	last := l.OS.Size - 512
	tests := []struct {
		name    string
		off     int64
		want    string
		fromBak bool // Read falls back to the backup
	}{
		{"primary header", 512 + 40, "primary GPT at LBA 1: header CRC", true},
		{"primary entries", 2*512 + 3*128 + 50, "primary GPT entries at LBA 2: CRC", true},
		{"backup header", last + 40, "backup GPT at LBA", false},
		{"backup entries", last - 32*512 + 2*128 + 50, "backup GPT entries", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img")
			copyFile(t, osImg, img)
			corrupt(t, img, tt.off)
			err := Verify(img)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v, want %q", err, tt.want)
			}
			tab, err := ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			if tab.RecoveredFromBackup != tt.fromBak {
				t.Errorf("RecoveredFromBackup = %v", tab.RecoveredFromBackup)
			}
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := tab.WriteBack(f); err != nil {
				t.Fatal(err)
			}
			if err := Verify(img); err != nil {
				t.Errorf("after WriteBack: %v", err)
			}
			again, err := ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(again.Partitions()) != fmt.Sprint(l.OS.Partitions) {
				t.Errorf("repaired table differs from the plan")
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	fi, _ := in.Stat()
	// Copy only the GPT areas; the rest of the image is zero (sparse).
	if err := out.Truncate(fi.Size()); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, fi.Size() - MiB} {
		b := make([]byte, MiB)
		if _, err := in.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		if _, err := out.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSetAttributesWritesOnlyThatEntry(t *testing.T) {
	_, osImg, _ := writeImage(t, Options{})
	gptAreas := func() []byte {
		// The first and last MiB; WriteBack writes nowhere else.
		return append(readAt(t, osImg, 0, MiB), readAt(t, osImg, 2047*MiB, MiB)...)
	}
	before := gptAreas()
	tab, err := ReadFile(osImg)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.SetAttributes(8, 2<<48|1<<52); err != nil {
		t.Fatal(err)
	}
	if err := tab.SetAttributes(99, 0); err == nil {
		t.Errorf("SetAttributes on a missing entry succeeded")
	}
	f, err := os.OpenFile(osImg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.WriteBack(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	after := gptAreas()
	if err := Verify(osImg); err != nil {
		t.Fatal(err)
	}
	size := int64(len(before))                                     // the last MiB follows the first in before/after
	attrOff := func(base int64) int64 { return base + 7*128 + 48 } // entry 8's attributes
	changed := map[int64]bool{}
	for i := range before {
		if before[i] != after[i] {
			changed[int64(i)] = true
		}
	}
	for off := range changed {
		inAttr := (off >= attrOff(2*512) && off < attrOff(2*512)+8) ||
			(off >= attrOff(size-33*512) && off < attrOff(size-33*512)+8)
		inHeader := (off >= 512+16 && off < 512+20) || (off >= 512+88 && off < 512+92) ||
			(off >= size-512+16 && off < size-512+20) || (off >= size-512+88 && off < size-512+92)
		if !inAttr && !inHeader {
			t.Errorf("byte %d changed (not entry 8's attributes nor a header CRC)", off)
		}
	}
	if !changed[attrOff(2*512)+6] || !changed[attrOff(size-33*512)+6] {
		t.Errorf("entry 8's attribute bytes did not change in both copies")
	}
}

func TestSection(t *testing.T) {
	l, osImg, _ := writeImage(t, Options{})
	rootB, _ := l.OS.Partitions.ByRole("ROOT-B")
	s, err := OpenPartition(osImg, rootB.Number, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if s.Size() != 920*MiB || s.Partition().Name != "GANTRY-ROOT-B" {
		t.Errorf("section %d bytes of %s", s.Size(), s.Partition().Name)
	}
	if _, err := io.Copy(s.Writer(), strings.NewReader("root filesystem")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteAt([]byte("END!"), s.Size()-4); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		off int64
		n   int
	}{{s.Size() - 3, 4}, {s.Size() + 1, 1}, {-1, 1}}
	for _, tt := range tests {
		if _, err := s.WriteAt(make([]byte, tt.n), tt.off); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("WriteAt(%d bytes at %d) = %v, want ErrOutOfRange", tt.n, tt.off, err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if got := string(readAt(t, osImg, rootB.Start-1, 16)); got != "\x00root filesystem" {
		t.Errorf("start of ROOT-B: %q", got)
	}
	if got := string(readAt(t, osImg, rootB.End()-4, 5)); got != "END!\x00" {
		t.Errorf("end of ROOT-B: %q", got)
	}

	// Reads are bounded too, and a stream longer than the partition fails.
	r, err := OpenPartition(osImg, l.OS.Partitions[12].Number, os.O_RDWR) // DATA-A, 1 MiB
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, err := r.ReadAt(make([]byte, 10), r.Size()-5); n != 5 || err != io.EOF {
		t.Errorf("ReadAt across the end = %d, %v", n, err)
	}
	if _, err := io.Copy(r.Writer(), io.LimitReader(zeros{}, MiB+1)); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("copying MiB+1 bytes into 1 MiB: %v", err)
	}
	if _, err := OpenPartition(osImg, 42, os.O_RDONLY); err == nil {
		t.Errorf("opened a missing partition")
	}
}

// readAt reads n bytes of path at off.
func readAt(t *testing.T, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

// TestCrashBetweenWrites builds the disk states a crash during WriteBack can
// leave (it writes backup entries, backup header, primary entries, primary
// header, syncing after each) and checks that Read sees either the whole old
// or the whole new table.
func TestCrashBetweenWrites(t *testing.T) {
	l, oldImg, _ := writeImage(t, Options{})
	newImg := filepath.Join(t.TempDir(), "new.img")
	copyFile(t, oldImg, newImg)
	tab, err := ReadFile(newImg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{3, 8} { // as upgrade-to-inactive does: two entries at once
		if err := tab.SetAttributes(n, tab.Partitions()[n-1].Attributes^(3<<48)); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(newImg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.WriteBack(f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	size := l.OS.Size
	regions := map[string][2]int64{ // offset, length
		"backup entries":  {size - 33*512, 32 * 512},
		"backup header":   {size - 512, 512},
		"primary entries": {2 * 512, 32 * 512},
		"primary header":  {512, 512},
	}
	order := []string{"backup entries", "backup header", "primary entries", "primary header"}
	attrs := func(path string) string {
		tab, err := ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		ps := tab.Partitions()
		return fmt.Sprintf("%x %x", ps[2].Attributes, ps[7].Attributes)
	}
	oldAttrs, newAttrs := attrs(oldImg), attrs(newImg)
	if oldAttrs == newAttrs {
		t.Fatal("test tables do not differ")
	}
	// After k completed writes (and a torn k+1-th: half its sectors new).
	for k := 0; k <= len(order); k++ {
		for _, torn := range []bool{false, true} {
			if torn && k == len(order) {
				continue
			}
			img := filepath.Join(t.TempDir(), "crash.img")
			copyFile(t, oldImg, img)
			apply := func(name string, half bool) {
				r := regions[name]
				n := r[1]
				if half {
					n = max(n/2, 256) // part of the sector(s) only
				}
				f, err := os.OpenFile(img, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if _, err := f.WriteAt(readAt(t, newImg, r[0], n), r[0]); err != nil {
					t.Fatal(err)
				}
			}
			for _, name := range order[:k] {
				apply(name, false)
			}
			if torn {
				apply(order[k], true)
			}
			got := attrs(img)
			if got != oldAttrs && got != newAttrs {
				t.Errorf("after %d writes (torn next: %v): attributes %s are neither old %s nor new %s", k, torn, got, oldAttrs, newAttrs)
			}
			// Writing the table read back makes both copies valid and equal.
			tab, err := ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := tab.WriteBack(f); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := Verify(img); err != nil {
				t.Errorf("after %d writes, rewritten: %v", k, err)
			}
		}
	}
}
