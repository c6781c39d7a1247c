package imagebuild

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/boot/verity"
	"github.com/gantry-os/gantry/pkg/model"
)

// fakeVariant writes a variant folder for the fake package set.
func fakeVariant(t *testing.T, distribution string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fake-dev")
	files := map[string]string{
		"variant.toml": `name = "fake-dev"
version = "1.2.3"
` + distribution + `
[kernel]
package = "fake-kernel"
parameters = ["console=ttyS0"]
[image]
os-image-size-gib = 1
[packages]
include = ["fake-systemd"]
exclude = ["fake-scripts"]
[gantry]
commands = ["signpost"]
[settings]
groups = ["motd", "ntp"]
[systemd]
enable = ["fake-daemon.service"]
mask = ["getty.target"]
[root]
remove = ["/usr/share/fake/big"]
`,
		"defaults.d/00-base.toml":   "[settings]\nmotd = \"hi\"\n",
		"templates/motd":            "{{settings.motd}}\n",
		"units/fake-gantry.service": "[Service]\nExecStart=/usr/bin/signpost status\n[Install]\nWantedBy=multi-user.target\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fakeArchive builds the fake packages and their signed apt archive; it
// returns the [distribution] table that names it.
func fakeArchive(t *testing.T) string {
	t.Helper()
	repo := t.TempDir()
	elf := "\x7fELF fake program"
	fakeDeb(t, repo, "fake-libc", "2.36-1", "", []fakeFile{
		{path: "/lib/x86_64-linux-gnu/libfake.so.1", data: elf},
		{path: "/usr/share/doc/fake-libc/copyright", data: "c"},
		{path: "/usr/share/locale/de/LC_MESSAGES/libc.mo", data: "mo"},
		{path: "/usr/lib/locale/C.utf8/LC_CTYPE", data: "ctype"},
	})
	fakeDeb(t, repo, "fake-shell", "5.2-1", "", []fakeFile{
		{path: "/bin/dash", data: elf, mode: 0o755},
		{path: "/bin/sh", link: "dash"},
		{path: "/usr/bin/helper-script", data: "#!/bin/sh\necho hi\n", mode: 0o755},
	})
	fakeDeb(t, repo, "fake-scripts", "1.0", "", []fakeFile{{path: "/usr/bin/should-not-appear", data: elf, mode: 0o755}})
	fakeDeb(t, repo, "fake-systemd", "252.1", "Depends: fake-libc (>= 2.30), fake-shell, fake-scripts\n", []fakeFile{
		{path: "/lib/systemd/systemd", data: elf, mode: 0o755},
		{path: "/sbin/init", link: "/lib/systemd/systemd"},
		{path: "/lib/systemd/system/multi-user.target", data: "[Unit]\nDescription=Multi-User\n"},
		{path: "/lib/systemd/system/fake-daemon.service", data: "[Service]\nExecStart=/lib/systemd/systemd\n[Install]\nWantedBy=multi-user.target\n"},
		{path: "/usr/lib/sysusers.d/basic.conf", data: "g tty 5 -\nu root 0 - /root /bin/bash\nu nobody 65534:65534 - /nonexistent /usr/sbin/nologin\ng nogroup 65534 -\n"},
		{path: "/usr/lib/sysusers.d/systemd-journal.conf", data: "g systemd-journal - -\n"},
		{path: "/etc/fake/fake.conf", data: "conf"},
		{path: "/usr/share/fake/big", data: strings.Repeat("x", 10000)},
		{path: "/usr/bin/fake-suid", data: elf, mode: os.ModeSetuid | 0o755},
	})
	fakeDeb(t, repo, "fake-kernel", "6.1-1", "", []fakeFile{
		{path: "/boot/vmlinuz-6.1.0-fake", data: "fake kernel image"},
		{path: "/boot/System.map-6.1.0-fake", data: "map"},
		{path: "/lib/modules/6.1.0-fake/modules.builtin", data: ""},
		{path: "/lib/modules/6.1.0-fake/kernel/fs/fake/fake.ko", data: fakeKO("fake")},
		// The selector initramfs's modules (SelectorModules).
		{path: "/lib/modules/6.1.0-fake/kernel/drivers/virtio/virtio.ko", data: fakeKO("virtio")},
		{path: "/lib/modules/6.1.0-fake/kernel/drivers/virtio/virtio_pci.ko", data: fakeKO("virtio_pci", "virtio")},
		{path: "/lib/modules/6.1.0-fake/kernel/drivers/block/virtio_blk.ko", data: fakeKO("virtio_blk", "virtio")},
		{path: "/lib/modules/6.1.0-fake/kernel/drivers/firmware/qemu_fw_cfg.ko", data: fakeKO("qemu_fw_cfg")},
	})
	// systemd-boot for the ESP (BootLoaderPackage, requested by every build).
	fakeDeb(t, repo, BootLoaderPackage, "252.1", "", []fakeFile{
		{path: "/" + bootLoaderBinary, data: "MZ fake systemd-boot"},
		{path: "/usr/lib/systemd/boot/efi/linuxx64.efi.stub", data: "MZ fake stub"},
	})
	return fakeRepo(t, repo)
}

// TestBuildFakePackages runs the whole build on a tiny fake package set
// from a local apt repository (no network): closure with an excluded
// package, lock file, extraction, root configuration, pruning, erofs,
// verity, BOOT, the disks; then builds again from the lock and compares
// every output byte for byte.
func TestBuildFakePackages(t *testing.T) {
	needTools(t, "apt-get", "apt-cache", "dpkg-deb", "mkfs.erofs", "mkfs.ext4", "debugfs", "go")
	if testing.Short() {
		t.Skip("builds two images")
	}
	ctx := context.Background()
	vdir := fakeVariant(t, fakeArchive(t))
	rootJSON := filepath.Join(t.TempDir(), "root.json")
	if err := os.WriteFile(rootJSON, []byte(`{"signed":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	epoch := int64(1700000000)
	cache := t.TempDir()
	opts := func(out string) Options {
		return Options{VariantDir: vdir, Source: sourceRoot(t), Out: out, CacheDir: cache,
			BuildID: "test0001", Epoch: &epoch, RootJSON: rootJSON}
	}
	var progress bytes.Buffer
	o1 := opts(filepath.Join(t.TempDir(), "out"))
	o1.Progress = &progress
	res, err := Build(ctx, o1)
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("build 1:\n%s", progress.String())
	if !res.LockWritten {
		t.Error("the first build did not write the lock")
	}
	lock, err := ReadLock(filepath.Join(vdir, LockFile))
	if err != nil || lock == nil {
		t.Fatalf("lock: %v", err)
	}
	var names []string
	for _, p := range lock.Packages {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, " "); got != "fake-kernel fake-libc fake-shell fake-systemd "+BootLoaderPackage {
		t.Errorf("locked packages %q (fake-scripts is excluded)", got)
	}
	for _, step := range []string{"resolve packages", "fetch packages", "extract packages", "root filesystem (erofs)", "disk image"} {
		if !strings.Contains(progress.String(), step) {
			t.Errorf("progress has no step %q", step)
		}
	}

	out := res.OutDir
	base := "gantry-fake-dev-x86_64-1.2.3-test0001"
	for _, n := range []string{base + ".img", base + "-data.img", "esp.img", "boot.img", "root.img", "hash.img", "roothash", "vmlinuz", "initrd.img", "cmdline", "build.json"} {
		if _, err := os.Stat(filepath.Join(out, n)); err != nil {
			t.Errorf("output %s: %v", n, err)
		}
	}
	var sum Summary
	data, err := os.ReadFile(filepath.Join(out, "build.json"))
	if err == nil {
		err = json.Unmarshal(data, &sum)
	}
	if err != nil {
		t.Fatal(err)
	}
	if sum.PackageCount != 5 || sum.RootHash != res.RootHash || sum.Root.CompressedBytes == 0 || len(sum.Outputs) != 10 ||
		sum.Kernel != "6.1.0-fake" || sum.Cmdline != "console=ttyS0 gantry.roothash="+res.RootHash {
		t.Errorf("build.json: %s", data)
	}
	if err := verity.Verify(ctx, filepath.Join(out, "root.img"), filepath.Join(out, "hash.img"), res.RootHash); err != nil {
		t.Errorf("verity: %v", err)
	}
	checkFakeRoot(t, filepath.Join(out, "root.img"))
	checkFakeDisks(t, out, base, res.RootHash)
	checkESP(t, out, filepath.Join(out, base+".img"))

	// Again, from the lock this time: every output is the same.
	res2, err := Build(ctx, opts(filepath.Join(t.TempDir(), "out")))
	if err != nil {
		t.Fatal(err)
	}
	if res2.LockWritten {
		t.Error("the second build rewrote a current lock")
	}
	compareOutputs(t, out, res2.OutDir)

	// The archive moved on: the lock pins a fake-libc the archive no longer
	// has (and a fresh cache, as on a new machine, does not hold it either).
	lockPath := filepath.Join(vdir, LockFile)
	good, _ := os.ReadFile(lockPath)
	gone := bytes.Replace(good, []byte("fake-libc=2.36-1="), []byte("fake-libc=2.35-1="), 1)
	if bytes.Equal(gone, good) {
		t.Fatal("the lock has no fake-libc=2.36-1 line to age")
	}
	writeLockText := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(lockPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeLockText(gone)
	locked := opts(filepath.Join(t.TempDir(), "out"))
	locked.CacheDir, locked.Locked = t.TempDir(), true
	_, err = Build(ctx, locked)
	var de *DriftError
	if !errors.As(err, &de) || len(de.Drift) != 1 || de.Drift[0].Package != "fake-libc" ||
		!strings.Contains(err.Error(), "fake-libc 2.35-1: 2.35-1 left the archive; it has 2.36-1") {
		t.Errorf("--locked with a pin the archive lost: %v, want a DriftError naming fake-libc", err)
	}
	if now, _ := os.ReadFile(lockPath); !bytes.Equal(now, gone) {
		t.Error("a refused drift rewrote the lock")
	}
	drifted := opts(filepath.Join(t.TempDir(), "out"))
	drifted.CacheDir = t.TempDir()
	res3, err := Build(ctx, drifted)
	if err != nil {
		t.Fatalf("a default build with a pin the archive lost must re-resolve, not fail: %v", err)
	}
	if len(res3.Drift) != 1 || res3.Drift[0] != (Drift{Package: "fake-libc", Old: "2.35-1", New: "2.36-1", Why: "2.35-1 left the archive; it has 2.36-1"}) || !res3.LockWritten {
		t.Errorf("drift %+v (lock written %v), want fake-libc 2.35-1 → 2.36-1", res3.Drift, res3.LockWritten)
	}
	var printed bytes.Buffer
	printDrift(&printed, res3)
	if !strings.Contains(printed.String(), "PACKAGE DRIFT") || !strings.Contains(printed.String(), "fake-libc 2.35-1 → 2.36-1") {
		t.Errorf("printed drift:\n%s", printed.String())
	}
	if now, _ := os.ReadFile(lockPath); !bytes.Equal(now, good) {
		t.Errorf("the re-resolved lock is not the archive's:\n%s\nwant\n%s", now, good)
	}
	compareOutputs(t, out, res3.OutDir)

	// A release rebuilds from its package store alone: the archive is gone,
	// the cache is empty, and the outputs are the same bytes.
	store := filepath.Join(t.TempDir(), "store")
	export := opts(filepath.Join(t.TempDir(), "out"))
	export.ExportStore = store
	if _, err := Build(ctx, export); err != nil {
		t.Fatal(err)
	}
	offline := opts(filepath.Join(t.TempDir(), "out"))
	offline.CacheDir, offline.Store = t.TempDir(), store
	lv, err := LoadVariant(vdir, "")
	if err != nil {
		t.Fatal(err)
	}
	archive := strings.TrimPrefix(lv.Distribution.Sources[0].URI, "file://")
	if err := os.Rename(archive, archive+".gone"); err != nil {
		t.Fatal(err)
	}
	res4, err := Build(ctx, offline)
	if err := os.Rename(archive+".gone", archive); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("offline build from the store: %v", err)
	}
	if res4.RootHash != res.RootHash {
		t.Errorf("root hash from the store %s, from the archive %s", res4.RootHash, res.RootHash)
	}
	compareOutputs(t, out, res4.OutDir)
	if _, err := os.Stat(filepath.Join(offline.CacheDir, "apt")); err == nil {
		t.Error("the offline build made an apt root: it asked the archive")
	}
	// A store that lacks a pinned .deb refuses, naming it.
	debs := mustGlob(t, filepath.Join(store, "debs", "*.deb"))
	if err := os.Remove(debs[0]); err != nil {
		t.Fatal(err)
	}
	offline.CacheDir, offline.Out = t.TempDir(), filepath.Join(t.TempDir(), "out")
	if _, err := Build(ctx, offline); !errors.As(err, &de) || !strings.Contains(err.Error(), "not in the package store") {
		t.Errorf("store without a pinned .deb: %v", err)
	}

	// A stale lock with --locked is an error, not a new resolution.
	v := filepath.Join(vdir, VariantFile)
	text, _ := os.ReadFile(v)
	if err := os.WriteFile(v, bytes.Replace(text, []byte(`include = ["fake-systemd"]`), []byte(`include = ["fake-systemd", "fake-libc"]`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	o3 := opts(filepath.Join(t.TempDir(), "out"))
	o3.Locked = true
	if _, err := Build(ctx, o3); err == nil || !strings.Contains(err.Error(), "--locked forbids resolving") {
		t.Errorf("stale lock with Locked: %v", err)
	}

	// A command that gantry-node does not have fails the build, naming the
	// variant file and the command.
	text, _ = os.ReadFile(v)
	if err := os.WriteFile(v, bytes.Replace(text, []byte(`commands = ["signpost"]`), []byte(`commands = ["signpost", "power-knob"]`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	want := v + ": gantry.commands names power-knob, which gantry-node does not have"
	if _, err := Build(ctx, opts(filepath.Join(t.TempDir(), "out"))); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("unknown command: %v, want %q", err, want)
	}
}

// extractRoot unpacks an erofs image with fsck.erofs.
func extractRoot(t *testing.T, img string) string {
	t.Helper()
	needTools(t, "fsck.erofs")
	dir := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("fsck.erofs", "--extract="+dir, img).CombinedOutput(); err != nil {
		t.Fatalf("fsck.erofs --extract: %v\n%s", err, out)
	}
	return dir
}

// walkForbidden lists the forbidden paths of an extracted root.
func walkForbidden(t *testing.T, root string) []string {
	t.Helper()
	var bad []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel != "." && forbidden(filepath.ToSlash(rel)) != "" {
			bad = append(bad, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return bad
}

func checkFakeRoot(t *testing.T, img string) {
	t.Helper()
	root := extractRoot(t, img)
	read := func(rel string) string {
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
		}
		return string(data)
	}
	if bad := walkForbidden(t, root); len(bad) > 0 {
		t.Errorf("forbidden paths in the root: %v", bad)
	}
	for _, gone := range []string{"usr/bin/sh", "usr/bin/dash", "usr/bin/helper-script", "usr/bin/should-not-appear",
		"usr/share/doc", "usr/share/locale", "usr/share/fake/big", "boot/vmlinuz-6.1.0-fake", "usr/lib/modules/6.1.0-fake/kernel/fs/fake/fake.ko"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
			t.Errorf("/%s is in the root", gone)
		}
	}
	for _, kept := range []string{"usr/lib/locale/C.utf8/LC_CTYPE", "usr/lib/x86_64-linux-gnu/libfake.so.1", "boot", "tmp", "proc",
		"usr/share/gantry/root.json", "usr/share/templates/motd", "usr/share/gantry/defaults.d/00-base.toml",
		"usr/share/gantry/etc-skel/passwd", "usr/share/gantry/etc-skel/fake/fake.conf", "usr/share/gantry/variant.toml",
		"usr/lib/systemd/system/multi-user.target.wants/fake-daemon.service",
		"usr/lib/systemd/system/multi-user.target.wants/fake-gantry.service"} {
		if _, err := os.Lstat(filepath.Join(root, kept)); err != nil {
			t.Errorf("/%s is missing: %v", kept, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(root, "tmp")); err != nil || fi.Mode()&fs.ModeSticky == 0 {
		t.Errorf("/tmp is not sticky: %v", fi.Mode())
	}
	// (Set-id bits are in the image, but fsck.erofs 1.5 --extract drops
	// them; TestExtractDeb checks them in the staging tree.)
	if l, _ := os.Readlink(filepath.Join(root, "bin")); l != "usr/bin" {
		t.Errorf("/bin -> %q", l)
	}
	checkNodeLinks(t, root, []string{"signpost"})
	if _, err := os.Lstat(filepath.Join(root, "usr/bin/apiserver")); err == nil {
		t.Error("/usr/bin/apiserver is in the root; the variant names only signpost")
	}
	osr := read("usr/lib/os-release")
	for _, want := range []string{"NAME=Gantry\n", "ID=gantry\n", "VERSION_ID=1.2.3\n", "VARIANT_ID=fake-dev\n", "BUILD_ID=test0001\n", `PRETTY_NAME="Gantry 1.2.3 (fake-dev)"`} {
		if !strings.Contains(osr, want) {
			t.Errorf("os-release lacks %q:\n%s", want, osr)
		}
	}
	// The settings model the node's programs load is the variant file's.
	if m, err := model.Load("fake-dev", filepath.Join(root, GroupsPath)); err != nil {
		t.Errorf("settings groups: %v", err)
	} else if got := strings.Join(m.GroupNames(), ","); got != "motd,ntp" {
		t.Errorf("settings groups %s", got)
	}
	if g := read("etc/group"); !strings.Contains(g, "api:x:274:\n") || !strings.Contains(g, "systemd-journal:x:190:\n") {
		t.Errorf("/etc/group:\n%s", g)
	}
	if p := read("etc/passwd"); !strings.HasPrefix(p, "root:x:0:0:root:/root:/usr/sbin/nologin\n") {
		t.Errorf("/etc/passwd:\n%s", p)
	}
	if m := read("etc/machine-id"); m != "" {
		t.Errorf("machine-id %q", m)
	}
	if l, _ := os.Readlink(filepath.Join(root, "etc/systemd/system/getty.target")); l != "/dev/null" {
		t.Errorf("getty.target not masked: %q", l)
	}
}

// checkNodeLinks checks that the extracted root has the node binary,
// static, and each command as a relative link to it, and that running a
// link runs its command: signpost --help through /usr/bin/signpost.
func checkNodeLinks(t *testing.T, root string, commands []string) {
	t.Helper()
	bin := filepath.Join(root, "usr/bin", NodeBinary)
	if fi, err := os.Lstat(bin); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
		t.Fatalf("/usr/bin/%s: %v, %v; want an executable file", NodeBinary, fi, err)
	}
	if err := checkStatic(bin); err != nil {
		t.Error(err)
	}
	for _, c := range commands {
		if l, err := os.Readlink(filepath.Join(root, "usr/bin", c)); err != nil || l != NodeBinary {
			t.Errorf("/usr/bin/%s -> %q (%v), want a link to %s", c, l, err, NodeBinary)
		}
	}
	out, err := exec.Command(bin, "--list").Output()
	if err != nil {
		t.Fatalf("%s --list: %v", NodeBinary, err)
	}
	for _, c := range commands {
		if !slices.Contains(strings.Fields(string(out)), c) {
			t.Errorf("%s --list lacks %s:\n%s", NodeBinary, c, out)
		}
	}
	out, err = exec.Command(filepath.Join(root, "usr/bin/signpost"), "--help").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "signpost keeps the A/B boot state") || !strings.Contains(string(out), "\n  signpost [command]\n") {
		t.Errorf("/usr/bin/signpost --help: %v\n%s", err, out)
	}
}

func checkFakeDisks(t *testing.T, out, base, rootHash string) {
	t.Helper()
	tab, err := disklayout.ReadFile(filepath.Join(out, base+".img"))
	if err != nil {
		t.Fatal(err)
	}
	setA, err := tab.Partitions().Set(disklayout.SetA)
	if err != nil {
		t.Fatal(err)
	}
	if setA.Boot.Attributes != disklayout.BootAAttributes {
		t.Errorf("BOOT-A attributes %#x", setA.Boot.Attributes)
	}
	root, _ := os.ReadFile(filepath.Join(out, "root.img"))
	sec, err := disklayout.OpenPartition(filepath.Join(out, base+".img"), setA.Root.Number, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(root))
	_, err = sec.ReadAt(got, 0)
	sec.Close()
	if err != nil || !bytes.Equal(got, root) {
		t.Errorf("ROOT-A does not hold root.img: %v", err)
	}
	data, err := disklayout.ReadFile(filepath.Join(out, base+"-data.img"))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := data.Partitions().ByName(disklayout.NameData); !ok || p.Set != disklayout.SetB {
		t.Errorf("data disk: no DATA-B named %s: %+v", disklayout.NameData, data.Partitions())
	}
	cmd, err := exec.Command("debugfs", "-R", "cat /cmdline", filepath.Join(out, "boot.img")).Output()
	if err != nil || !strings.Contains(string(cmd), "gantry.roothash="+rootHash) {
		t.Errorf("BOOT's cmdline %q: %v", cmd, err)
	}
}

// compareOutputs checks that two output folders hold the same files with
// the same SHA-256.
func compareOutputs(t *testing.T, a, b string) {
	t.Helper()
	list := func(dir string) map[string]string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			if e.Type().IsRegular() {
				names = append(names, e.Name())
			}
		}
		outs, err := hashFiles(dir, names)
		if err != nil {
			t.Fatal(err)
		}
		sums := map[string]string{}
		for _, o := range outs {
			sums[o.Name] = o.SHA256
		}
		return sums
	}
	sa, sb := list(a), list(b)
	if len(sa) != len(sb) {
		t.Errorf("outputs differ: %v vs %v", sa, sb)
	}
	for n, s := range sa {
		if sb[n] != s {
			t.Errorf("%s differs between the two builds (%s vs %s)", n, s, sb[n])
		} else {
			t.Logf("identical: %s %s", s[:16], n)
		}
	}
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		t.Fatalf("nothing matches %s (%v)", pattern, err)
	}
	return m
}
