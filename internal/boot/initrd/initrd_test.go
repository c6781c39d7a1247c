package initrd

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cpioEntry is one member as readCPIO sees it.
type cpioEntry struct {
	name                              string
	ino, mode, uid, gid, nlink, mtime uint32
	rdevMajor, rdevMinor              uint32
	data                              []byte
}

// readCPIO is an independent newc reader: it checks magic, padding and the
// trailer, and returns the members in archive order.
func readCPIO(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	for {
		if off%4 != 0 {
			t.Fatalf("header at unaligned offset %d", off)
		}
		if off+cpioHdrSize > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad header at %d", off)
		}
		var f [13]uint32
		for i := range f {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("field %d at %d: %v", i, off, err)
			}
			f[i] = uint32(v)
		}
		nameSize := int(f[11])
		name := string(b[off+cpioHdrSize : off+cpioHdrSize+nameSize-1])
		if b[off+cpioHdrSize+nameSize-1] != 0 {
			t.Fatalf("name %q not NUL-terminated", name)
		}
		off += cpioHdrSize + nameSize
		off += (4 - off%4) % 4
		size := int(f[6])
		data := b[off : off+size]
		off += size
		off += (4 - off%4) % 4
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, cpioEntry{name: name, ino: f[0], mode: f[1], uid: f[2], gid: f[3], nlink: f[4], mtime: f[5],
			rdevMajor: f[9], rdevMinor: f[10], data: data})
	}
}

func TestArchiveRoundTrip(t *testing.T) {
	a := newArchive()
	for _, e := range []entry{
		{Name: "/init", Mode: modeFile | 0o755, Data: []byte("hello")},
		{Name: "lib/modules/a-b.ko", Mode: modeFile | 0o644, Data: []byte("123456789")},
		{Name: "lib/modules-x/z", Mode: modeFile | 0o644},
		{Name: "dev/console", Mode: modeCharDev | 0o600, RdevMajor: 5, RdevMinor: 1},
		{Name: "bin/sh", Mode: modeSymlink | 0o777, Data: []byte("/init")},
		{Name: "dev", Mode: modeDir | 0o755},
	} {
		if err := a.add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.add(entry{Name: "init", Mode: modeFile}); err == nil {
		t.Error("adding a duplicate succeeded")
	}
	var buf bytes.Buffer
	if err := a.writeTo(&buf, 1700000000); err != nil {
		t.Fatal(err)
	}
	got := readCPIO(t, buf.Bytes())
	var names []string
	for i, e := range got {
		names = append(names, e.name)
		if e.ino != uint32(i+1) || e.mtime != 1700000000 || e.uid != 0 || e.gid != 0 {
			t.Errorf("%s: ino %d mtime %d uid %d gid %d", e.name, e.ino, e.mtime, e.uid, e.gid)
		}
	}
	want := "bin bin/sh dev dev/console init lib lib/modules lib/modules/a-b.ko lib/modules-x lib/modules-x/z"
	if strings.Join(names, " ") != want {
		t.Errorf("order:\n %s\nwant\n %s", strings.Join(names, " "), want)
	}
	byName := map[string]cpioEntry{}
	for _, e := range got {
		byName[e.name] = e
	}
	for _, c := range []struct {
		name string
		mode uint32
		data string
	}{
		{"init", modeFile | 0o755, "hello"},
		{"lib/modules/a-b.ko", modeFile | 0o644, "123456789"},
		{"bin/sh", modeSymlink | 0o777, "/init"},
		{"lib", modeDir | 0o755, ""},
	} {
		e := byName[c.name]
		if e.mode != c.mode || string(e.data) != c.data {
			t.Errorf("%s: mode %o data %q, want %o %q", c.name, e.mode, e.data, c.mode, c.data)
		}
	}
	if c := byName["dev/console"]; c.rdevMajor != 5 || c.rdevMinor != 1 {
		t.Errorf("dev/console is %d:%d", c.rdevMajor, c.rdevMinor)
	}
}

// fakeModule writes a minimal ELF64 relocatable file with a .modinfo
// section holding the given key=value strings, enough for debug/elf.
func fakeModule(t *testing.T, path string, info ...string) {
	t.Helper()
	modinfo := []byte(strings.Join(info, "\x00") + "\x00")
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	le := binary.LittleEndian
	const ehsize, shentsize = 64, 64
	modOff := ehsize
	strOff := modOff + len(modinfo)
	shOff := (strOff + len(shstrtab) + 7) &^ 7
	b := make([]byte, shOff+3*shentsize)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1 // 64-bit, little-endian, version 1
	le.PutUint16(b[16:], 1)    // ET_REL
	le.PutUint16(b[18:], 62)   // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[40:], uint64(shOff))
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[58:], shentsize)
	le.PutUint16(b[60:], 3) // shnum
	le.PutUint16(b[62:], 2) // shstrndx
	copy(b[modOff:], modinfo)
	copy(b[strOff:], shstrtab)
	sh := func(i int, name, typ uint32, off, size int) {
		s := b[shOff+i*shentsize:]
		le.PutUint32(s[0:], name)
		le.PutUint32(s[4:], typ)
		le.PutUint64(s[24:], uint64(off))
		le.PutUint64(s[32:], uint64(size))
		le.PutUint64(s[48:], 1)
	}
	sh(1, 1, 1, modOff, len(modinfo))   // .modinfo, SHT_PROGBITS
	sh(2, 10, 3, strOff, len(shstrtab)) // .shstrtab, SHT_STRTAB
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeKernel lays out a modules directory like Debian's linux-image package.
func fakeKernel(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "lib/modules/6.1.0-test")
	mods := map[string][]string{
		"kernel/drivers/virtio/virtio_ring.ko":           {"license=GPL", "depends="},
		"kernel/drivers/virtio/virtio.ko":                {"depends=virtio_ring"},
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko": {"depends="},
		"kernel/drivers/virtio/virtio_pci_legacy_dev.ko": {"depends="},
		"kernel/drivers/virtio/virtio_pci.ko":            {"depends=virtio_pci_legacy_dev,virtio_pci_modern_dev,virtio,virtio_ring"},
		"kernel/drivers/block/virtio_blk.ko":             {"depends=virtio,virtio_ring"},
		"kernel/drivers/md/dm-mod.ko":                    {"depends="},
		"kernel/drivers/md/dm-bufio.ko":                  {"depends=dm-mod"},
		"kernel/lib/reed_solomon/reed_solomon.ko":        {"depends="},
		"kernel/drivers/md/dm-verity.ko":                 {"depends=dm-bufio,reed_solomon,dm-mod"},
		"kernel/lib/libcrc32c.ko":                        {"depends=", "softdep=pre: crc32c"},
		"kernel/fs/erofs/erofs.ko":                       {"depends=libcrc32c", "softdep=pre: crc32c-intel post: nothing"},
		"kernel/arch/x86/crypto/crc32c-intel.ko":         {"depends="},
		"kernel/test/cyc_a.ko":                           {"depends=cyc_b"},
		"kernel/test/cyc_b.ko":                           {"depends=cyc_a"},
		"kernel/test/needs_missing.ko":                   {"depends=nowhere"},
	}
	for p, info := range mods {
		fakeModule(t, filepath.Join(dir, p), info...)
	}
	os.WriteFile(filepath.Join(dir, "kernel/test/zipped.ko.xz"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/fs/ext4/ext4.ko\nkernel/crypto/crc32c_generic.ko\nkernel/crypto/crc32c.ko\n"), 0o644)
	return dir
}

func TestResolveModules(t *testing.T) {
	dir := fakeKernel(t)
	for _, tc := range []struct {
		name    string
		ask     []string
		want    string
		wantErr string
	}{
		{"virtio", []string{"virtio_pci", "virtio_blk"},
			"virtio_pci_legacy_dev virtio_pci_modern_dev virtio_ring virtio virtio_pci virtio_blk", ""},
		{"verity with dashes", []string{"dm-verity"}, "dm_mod dm_bufio reed_solomon dm_verity", ""},
		{"soft pre-dependencies when present", []string{"erofs"}, "crc32c_intel libcrc32c erofs", ""},
		{"builtin skipped", []string{"ext4", "dm_mod"}, "dm_mod", ""},
		{"the initramfs set", []string{"virtio_pci", "virtio_blk", "dm_verity", "erofs", "ext4"},
			"virtio_pci_legacy_dev virtio_pci_modern_dev virtio_ring virtio virtio_pci virtio_blk dm_mod dm_bufio reed_solomon dm_verity crc32c_intel libcrc32c erofs", ""},
		{"repeat", []string{"virtio", "virtio"}, "virtio_ring virtio", ""},
		{"missing", []string{"nvme_fabrics"}, "", "not found"},
		{"missing dependency", []string{"needs_missing"}, "", "needed by needs_missing"},
		{"cycle", []string{"cyc_a"}, "", "cycle: cyc_a -> cyc_b -> cyc_a"},
		{"compressed", []string{"zipped"}, "", "compressed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mods, err := ResolveModules(dir, tc.ask)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, m := range mods {
				names = append(names, m.Name)
				if ModuleName(m.Path) != m.Name {
					t.Errorf("%s has file %s", m.Name, m.Path)
				}
			}
			if got := strings.Join(names, " "); got != tc.want {
				t.Errorf("order:\n %s\nwant\n %s", got, tc.want)
			}
		})
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"dm-verity":              "dm_verity",
		"/x/kernel/dm-verity.ko": "dm_verity",
		"virtio_blk.ko.xz":       "virtio_blk",
		"crc32c-intel.ko.zst":    "crc32c_intel",
		"kernel/fs/ext4/ext4.ko": "ext4",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func fakeInit(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "gantry-init")
	if err := os.WriteFile(p, append([]byte("\x7fELF"), bytes.Repeat([]byte{1, 2, 3}, 1000)...), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuild(t *testing.T) {
	dir := fakeKernel(t)
	initBin := fakeInit(t)
	out := t.TempDir()
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) {
			opts := Options{Init: initBin, ModulesDir: dir, Modules: []string{"virtio_blk", "dm-verity", "ext4"},
				Out: filepath.Join(out, fmt.Sprintf("a-%v", gz)), Epoch: time.Unix(1700000000, 0), Gzip: gz}
			if err := Build(context.Background(), opts); err != nil {
				t.Fatal(err)
			}
			opts2 := opts
			opts2.Out += ".again"
			// Touching the inputs must not change the output.
			os.Chtimes(initBin, time.Now(), time.Now())
			if err := Build(context.Background(), opts2); err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(opts.Out)
			b, _ := os.ReadFile(opts2.Out)
			if !bytes.Equal(a, b) {
				t.Fatal("two builds differ")
			}
			if gz {
				zr, err := gzip.NewReader(bytes.NewReader(a))
				if err != nil {
					t.Fatal(err)
				}
				if zr.Name != "" || !zr.ModTime.IsZero() {
					t.Errorf("gzip header has name %q mtime %v", zr.Name, zr.ModTime)
				}
				if a, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			files := map[string]cpioEntry{}
			for _, e := range readCPIO(t, a) {
				files[e.name] = e
			}
			for _, d := range []string{"dev", "proc", "sys", "sysroot", "run", "tmp"} {
				if files[d].mode != modeDir|0o755 {
					t.Errorf("%s: mode %o", d, files[d].mode)
				}
			}
			if e := files["init"]; e.mode != modeFile|0o755 || !bytes.HasPrefix(e.data, []byte("\x7fELF")) {
				t.Errorf("init: mode %o", e.mode)
			}
			if e := files["dev/console"]; e.mode != modeCharDev|0o600 || e.rdevMajor != 5 || e.rdevMinor != 1 {
				t.Errorf("dev/console: %+v", e)
			}
			list, err := ParseModuleList(bytes.NewReader(files[strings.TrimPrefix(ModuleListPath, "/")].data))
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"/lib/modules/virtio_ring.ko", "/lib/modules/virtio.ko", "/lib/modules/virtio_blk.ko",
				"/lib/modules/dm_mod.ko", "/lib/modules/dm_bufio.ko", "/lib/modules/reed_solomon.ko", "/lib/modules/dm_verity.ko"}
			if strings.Join(list, " ") != strings.Join(want, " ") {
				t.Errorf("module list %v, want %v", list, want)
			}
			for _, m := range want {
				if e, ok := files[strings.TrimPrefix(m, "/")]; !ok || !bytes.HasPrefix(e.data, []byte("\x7fELF")) {
					t.Errorf("%s missing from the archive", m)
				}
			}
		})
	}
}

func TestBuildRejects(t *testing.T) {
	dir := fakeKernel(t)
	initBin := fakeInit(t)
	notELF := filepath.Join(t.TempDir(), "script")
	os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755)
	out := filepath.Join(t.TempDir(), "initrd")
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"no init", Options{Out: out}},
		{"init not ELF", Options{Init: notELF, Out: out}},
		{"no out", Options{Init: initBin}},
		{"missing module", Options{Init: initBin, Out: out, ModulesDir: dir, Modules: []string{"nope"}}},
		{"modules without dir", Options{Init: initBin, Out: out, Modules: []string{"erofs"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Build(context.Background(), tc.opts); err == nil {
				t.Fatal("Build succeeded")
			}
		})
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed build left its output")
	}
}

func TestParseModuleList(t *testing.T) {
	got, err := ParseModuleList(strings.NewReader("# c\n\n /lib/modules/a.ko \n#x\n/lib/modules/b.ko"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "/lib/modules/a.ko,/lib/modules/b.ko" {
		t.Errorf("got %v", got)
	}
}
