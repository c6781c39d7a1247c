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
	root := testsupport.RepoRoot(t)
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

// testArchive is a real, signed apt archive in a folder (file: URI): the
// .debs at its top, dists/fake/main/binary-amd64/Packages and an InRelease
// signed with a key that gpg makes for the test.
type testArchive struct {
	dir, gnupg, keyring string
}

// newTestArchive makes the signing key; put .debs into dir, then publish.
func newTestArchive(t *testing.T, dir string) *testArchive {
	t.Helper()
	needTools(t, "gpg", "gpgconf")
	// gpg-agent's socket lives in the home folder, whose path must be short.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		os.RemoveAll(home)
	})
	a := &testArchive{dir: dir, gnupg: home, keyring: filepath.Join(t.TempDir(), "test-archive.gpg")}
	a.gpg(t, "--passphrase", "", "--quick-gen-key", "Gantry test archive <test@example.com>", "ed25519", "sign", "never")
	key := a.gpg(t, "--export")
	if err := os.WriteFile(a.keyring, key, 0o644); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *testArchive) gpg(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("gpg", append([]string{"--homedir", a.gnupg, "--batch", "--pinentry-mode", "loopback"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gpg %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// publish writes the index of the .debs now in the folder and signs it.
func (a *testArchive) publish(t *testing.T) {
	t.Helper()
	debs, _ := filepath.Glob(filepath.Join(a.dir, "*.deb"))
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
		fmt.Fprintf(&idx, "%sFilename: %s\nSize: %d\nSHA256: %s\n\n", ctl, filepath.Base(d), len(data), hex.EncodeToString(sum[:]))
	}
	const rel = "main/binary-amd64/Packages"
	dists := filepath.Join(a.dir, "dists", "fake")
	if err := os.MkdirAll(filepath.Join(dists, filepath.Dir(rel)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dists, rel), idx.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(idx.Bytes())
	release := fmt.Sprintf("Origin: Gantry tests\nSuite: fake\nCodename: fake\nDate: Sat, 01 Jan 2022 00:00:00 UTC\n"+
		"Architectures: amd64\nComponents: main\nSHA256:\n %s %d %s\n", hex.EncodeToString(sum[:]), idx.Len(), rel)
	if err := os.WriteFile(filepath.Join(dists, "Release"), []byte(release), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dists, "InRelease"))
	a.gpg(t, "--clearsign", "-o", filepath.Join(dists, "InRelease"), filepath.Join(dists, "Release"))
}

// distribution is the [distribution] table of a variant built from it.
func (a *testArchive) distribution() string {
	return fmt.Sprintf("[distribution]\nname = \"fake\"\nkeyring = %q\n[[distribution.sources]]\nuri = \"file://%s\"\n"+
		"suites = [\"fake\"]\ncomponents = [\"main\"]\n", a.keyring, a.dir)
}

// fakeRepo publishes the .debs in dir as a signed archive and returns the
// [distribution] table naming it.
func fakeRepo(t *testing.T, dir string) string {
	t.Helper()
	a := newTestArchive(t, dir)
	a.publish(t)
	return a.distribution()
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
