package imagebuild

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/testsupport"
)

// needTools skips the test (fails it under CI) when a host program it
// needs is missing.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	testsupport.RequireTools(t, tools...)
}

// sourceRoot is the Gantry source tree the tests run in.
func sourceRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	if !isGantryModule(root) {
		t.Fatalf("%s is not the Gantry module", root)
	}
	return root
}

// fakeFile is one entry of a fake package.
type fakeFile struct {
	path string // absolute path in the package, e.g. /bin/x
	data string
	mode os.FileMode // 0 means 0644; fs.ModeSymlink with link, or ModeDir
	link string      // symlink target
	hard string      // hard link to this path of the same package
}

// fakeDeb builds a .deb with dpkg-deb from a control stanza and files.
func fakeDeb(t *testing.T, dir, name, version, control string, files []fakeFile) string {
	t.Helper()
	tree := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(filepath.Join(tree, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctl := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: amd64\nMaintainer: Gantry tests <test@example.com>\nDescription: fake %s\n%s", name, version, name, control)
	if err := os.WriteFile(filepath.Join(tree, "DEBIAN", "control"), []byte(ctl), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		p := filepath.Join(tree, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case f.link != "":
			err := os.Symlink(f.link, p)
			if err != nil {
				t.Fatal(err)
			}
		case f.hard != "":
			if err := os.Link(filepath.Join(tree, f.hard), p); err != nil {
				t.Fatal(err)
			}
		case f.mode.IsDir():
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, f.mode.Perm()); err != nil {
				t.Fatal(err)
			}
		default:
			mode := f.mode
			if mode == 0 {
				mode = 0o644
			}
			if err := os.WriteFile(p, []byte(f.data), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := filepath.Join(dir, fmt.Sprintf("%s_%s_amd64.deb", name, version))
	cmd := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", tree, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build %s: %v\n%s", name, err, b)
	}
	return out
}

// fakeRepo writes a flat apt repository index (Packages) for the .debs in
// dir and an apt folder whose only source is that repository; it returns
// the apt folder.
func fakeRepo(t *testing.T, dir string) string {
	t.Helper()
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	sort.Strings(debs)
	var idx bytes.Buffer
	for _, d := range debs {
		ctl, err := exec.Command("dpkg-deb", "--field", d).Output()
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&idx, "%sFilename: ./%s\nSize: %d\nSHA256: %s\n\n", ctl, filepath.Base(d), len(data), hex.EncodeToString(sum[:]))
	}
	if err := os.WriteFile(filepath.Join(dir, "Packages"), idx.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	aptDir := filepath.Join(t.TempDir(), "apt")
	if err := os.MkdirAll(filepath.Join(aptDir, "sources.list.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("deb [trusted=yes] file:%s ./\n", dir)
	if err := os.WriteFile(filepath.Join(aptDir, "sources.list.d", "fake.list"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return aptDir
}

// fakeKO returns a minimal ELF64 relocatable object with a .modinfo
// section, which is all the builder reads of a kernel module.
func fakeKO(name string, deps ...string) string {
	modinfo := []byte("license=GPL\x00depends=" + strings.Join(deps, ",") + "\x00name=" + name + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	var b bytes.Buffer
	le := binary.LittleEndian
	dataOff := uint64(64)
	strOff := dataOff + uint64(len(modinfo))
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7
	// ELF header.
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	binary.Write(&b, le, uint16(1))  // ET_REL
	binary.Write(&b, le, uint16(62)) // EM_X86_64
	binary.Write(&b, le, uint32(1))
	binary.Write(&b, le, uint64(0)) // entry
	binary.Write(&b, le, uint64(0)) // phoff
	binary.Write(&b, le, shOff)
	binary.Write(&b, le, uint32(0))
	binary.Write(&b, le, uint16(64)) // ehsize
	binary.Write(&b, le, uint16(0))  // phentsize
	binary.Write(&b, le, uint16(0))  // phnum
	binary.Write(&b, le, uint16(64)) // shentsize
	binary.Write(&b, le, uint16(3))  // shnum
	binary.Write(&b, le, uint16(2))  // shstrndx
	b.Write(modinfo)
	b.Write(shstr)
	for uint64(b.Len()) < shOff {
		b.WriteByte(0)
	}
	sh := func(name, typ uint32, flags, off, size uint64) {
		binary.Write(&b, le, name)
		binary.Write(&b, le, typ)
		binary.Write(&b, le, flags)
		binary.Write(&b, le, uint64(0)) // addr
		binary.Write(&b, le, off)
		binary.Write(&b, le, size)
		binary.Write(&b, le, uint32(0)) // link
		binary.Write(&b, le, uint32(0)) // info
		binary.Write(&b, le, uint64(1)) // addralign
		binary.Write(&b, le, uint64(0)) // entsize
	}
	sh(0, 0, 0, 0, 0)
	sh(1, 1, 2, dataOff, uint64(len(modinfo)))
	sh(10, 3, 0, strOff, uint64(len(shstr)))
	return b.String()
}

// newTestStage returns an empty staging tree.
func newTestStage(t *testing.T) *stage {
	t.Helper()
	s, err := newStage(filepath.Join(t.TempDir(), "root"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

// put writes files into a staging tree (relative paths; "->" marks a link).
func put(t *testing.T, s *stage, files map[string]string) {
	t.Helper()
	for rel, data := range files {
		if target, ok := strings.CutPrefix(data, "-> "); ok {
			if err := s.symlink(target, rel); err != nil {
				t.Fatal(err)
			}
			continue
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(data, "#!") || strings.HasPrefix(rel, "usr/bin/") || strings.HasPrefix(rel, "usr/sbin/") {
			mode = 0o755
		}
		if err := s.writeFile(rel, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
}
