//go:build vm

package initrd_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/boot/initrd"
	"github.com/gantry-os/gantry/internal/boot/verity"
	"github.com/gantry-os/gantry/internal/testsupport"
)

// The integration test boots the real chain under QEMU: Debian's cloud
// kernel, an initramfs built by initrd.Build with gantry-init as /init, and
// a GPT disk (disklayout) whose ROOT-A holds an erofs root and HASH-A its
// verity tree (package verity). It needs qemu-system-x86_64, mkfs.erofs
// (erofs-utils) and, unless the cache already holds a kernel, apt-get and
// dpkg-deb. Set GANTRY_TEST_CACHE to choose where the kernel is kept;
// GANTRY_TEST_ACCEL=tcg forces software emulation even when KVM works.

const rootMarker = "GANTRY-ROOT-OK"

// initrdModules are the modules the initramfs needs for virtio-blk,
// dm-verity and erofs; ext4 is built into Debian's kernel and is skipped.
var initrdModules = []string{"virtio_pci", "virtio_blk", "dm_verity", "erofs", "ext4"}

type bootEnv struct {
	kernel, initrd string
	rootImg        string
	hashImg        string
	rootHash       string
	initBin        []byte // the root's /sbin/init, to find it in the image
	plan           *disklayout.Layout
	accel          []string
}

func TestBootQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	testsupport.RequireTools(t, "qemu-system-x86_64", "mkfs.erofs")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	env := setupBoot(ctx, t)
	good := "console=ttyS0 panic=-1 gantry.roothash=" + env.rootHash

	for _, tc := range []struct {
		name    string
		append  string
		corrupt bool
		want    []string // all must appear on the console
		wantNot []string
	}{
		{
			name:   "boots the verified root",
			append: good + " gantry.init=/sbin/init extra.param=1 plainarg",
			want: []string{rootMarker, "etc-skel=gantry-test", "etc-writable=true", "root-ro=true", "root-fs=erofs",
				"etc-fs=tmpfs", "run-fs=tmpfs", "tmp-fs=tmpfs", "pid=1", `"plainarg"`, "set A (GPT flags",
				"dm-status=verity:V corrupted=false", "dm-table=0 ", " verity 1 254:4 254:5 4096 4096 ",
				"restart_on_corruption", "dm-remove-mounted=dm remove root: device or resource busy"},
		},
		{
			name:    "corrupted root data",
			append:  good,
			corrupt: true,
			want:    []string{"device-mapper: verity", "is corrupted", "dm-verity device corrupted"},
			wantNot: []string{rootMarker},
		},
		{
			name:    "wrong root hash",
			append:  "console=ttyS0 panic=-1 gantry.roothash=" + strings.Repeat("0", 64),
			want:    []string{"device-mapper: verity", "is corrupted"},
			wantNot: []string{rootMarker},
		},
		{
			name:    "missing root hash",
			append:  "console=ttyS0 panic=-1",
			want:    []string{"FATAL", "no gantry.roothash=", "powering off"},
			wantNot: []string{rootMarker},
		},
		{
			name:    "forced set B has no verity data",
			append:  good + " gantry.set=B",
			want:    []string{"FATAL", "verity superblock"},
			wantNot: []string{rootMarker},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := makeDisk(t, env, tc.corrupt)
			out, dur := runQEMU(ctx, t, env, disk, tc.append)
			t.Logf("boot took %.2fs", dur.Seconds())
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, "gantry-init") || strings.Contains(l, "rootinit") || strings.Contains(l, "verity") {
					t.Log(strings.TrimSpace(l))
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("console lacks %q", w)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("console has %q", w)
				}
			}
			if t.Failed() {
				t.Logf("console:\n%s", out)
			}
		})
	}
}

func setupBoot(ctx context.Context, t *testing.T) *bootEnv {
	t.Helper()
	env := &bootEnv{}
	kroot := kernelRoot(ctx, t)
	vmlinuz, _ := filepath.Glob(filepath.Join(kroot, "boot/vmlinuz-*"))
	mods, _ := filepath.Glob(filepath.Join(kroot, "lib/modules/*"))
	if len(vmlinuz) != 1 || len(mods) != 1 {
		t.Fatalf("kernel tree %s: vmlinuz %v, modules %v", kroot, vmlinuz, mods)
	}
	env.kernel = vmlinuz[0]
	env.accel = accel(ctx, t, env.kernel)
	dir := t.TempDir()

	initBin := filepath.Join(dir, "gantry-init")
	goBuild(ctx, t, initBin, "github.com/gantry-os/gantry/cmd/gantry-init")
	rootInit := filepath.Join(dir, "rootinit")
	goBuild(ctx, t, rootInit, "./testdata/rootinit")

	env.initrd = filepath.Join(dir, "initrd.img")
	start := time.Now()
	if err := initrd.Build(ctx, initrd.Options{Init: initBin, ModulesDir: mods[0], Modules: initrdModules,
		Out: env.initrd, Epoch: time.Unix(1700000000, 0), Gzip: true}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(env.initrd)
	t.Logf("initramfs: %d bytes in %v", fi.Size(), time.Since(start).Round(time.Millisecond))

	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"sbin", "etc", "run", "tmp", "proc", "sys", "dev", "usr/share/gantry/etc-skel"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if env.initBin, err = os.ReadFile(rootInit); err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(rootfs, "sbin/init"), env.initBin, 0o755))
	must(t, os.WriteFile(filepath.Join(rootfs, "usr/share/gantry/etc-skel/hostname"), []byte("gantry-test\n"), 0o644))
	env.rootImg = filepath.Join(dir, "root.erofs")
	run(ctx, t, "mkfs.erofs", "-T0", "-U", "11111111-2222-3333-4444-555555555555", "--all-root", env.rootImg, rootfs)
	env.hashImg = filepath.Join(dir, "root.hash")
	res, err := verity.Create(ctx, env.rootImg, env.hashImg, verity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	env.rootHash = res.RootHash
	t.Logf("root: %d data blocks, root hash %s", res.DataBlocks, res.RootHash)

	if env.plan, err = disklayout.Plan(disklayout.Options{Rand: disklayout.SeededRand([]byte("boot-test"))}); err != nil {
		t.Fatal(err)
	}
	return env
}

// makeDisk writes a sparse OS disk with the root and its hash tree in set
// A; set B is left empty. With corrupt, one byte of the root's /sbin/init
// (in its ELF header, which exec must read) is flipped.
func makeDisk(t *testing.T, env *bootEnv, corrupt bool) string {
	t.Helper()
	disk := filepath.Join(t.TempDir(), "os.img")
	must(t, disklayout.WriteFile(disk, env.plan.OS))
	root, err := os.ReadFile(env.rootImg)
	must(t, err)
	if corrupt {
		i := bytes.Index(root, env.initBin[:4096])
		if i < 0 {
			t.Fatal("the init program is not stored contiguously in the erofs image")
		}
		root[i+100] ^= 0xff
	}
	hash, err := os.ReadFile(env.hashImg)
	must(t, err)
	set, err := env.plan.OS.Partitions.Set(disklayout.SetA)
	must(t, err)
	for _, w := range []struct {
		p    disklayout.Partition
		data []byte
	}{{set.Root, root}, {set.Hash, hash}} {
		s, err := disklayout.OpenPartition(disk, w.p.Number, os.O_RDWR)
		must(t, err)
		_, err = s.WriteAt(w.data, 0)
		must(t, err)
		must(t, s.Close())
	}
	return disk
}

func runQEMU(ctx context.Context, t *testing.T, env *bootEnv, disk, appendLine string) (string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	args := append([]string{"-nographic", "-m", "512", "-no-reboot",
		"-kernel", env.kernel, "-initrd", env.initrd, "-append", appendLine,
		"-drive", "file=" + disk + ",format=raw,if=virtio"}, env.accel...)
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	dur := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("qemu did not exit within the timeout; console:\n%s", out.String())
	}
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, out.String())
	}
	return strings.ReplaceAll(out.String(), "\r", ""), dur
}

// accel chooses the accelerator: KVM when /dev/kvm opens and a probe boot
// under KVM reaches the kernel's panic for want of a root (nested KVM can
// open fine and then hang), TCG otherwise. GANTRY_TEST_ACCEL=tcg or kvm
// forces one.
func accel(ctx context.Context, t *testing.T, kernel string) []string {
	t.Helper()
	kvm := []string{"-accel", "kvm"}
	tcg := []string{"-accel", "tcg"}
	switch os.Getenv("GANTRY_TEST_ACCEL") {
	case "tcg":
		return tcg
	case "kvm":
		return kvm
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		t.Logf("accelerator: tcg (/dev/kvm: %v)", err)
		return tcg
	}
	f.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(pctx, "qemu-system-x86_64", "-nographic", "-m", "256", "-no-reboot", "-accel", "kvm",
		"-kernel", kernel, "-append", "console=ttyS0 panic=-1").CombinedOutput()
	if !bytes.Contains(out, []byte("Kernel panic")) {
		t.Log("accelerator: tcg (/dev/kvm opens but a probe boot under KVM did not reach the kernel)")
		return tcg
	}
	t.Log("accelerator: kvm")
	return kvm
}

// kernelRoot returns the extracted Debian cloud kernel package, downloading
// and extracting it into the cache on first use.
func kernelRoot(ctx context.Context, t *testing.T) string {
	t.Helper()
	cache := os.Getenv("GANTRY_TEST_CACHE")
	if cache == "" {
		uc, err := os.UserCacheDir()
		if err != nil {
			testsupport.Missing(t, fmt.Sprintf("no cache directory for the test kernel: %v", err), "set HOME or GANTRY_TEST_CACHE")
		}
		cache = filepath.Join(uc, "gantry-test")
	}
	pkg := ""
	if _, err := exec.LookPath("apt-cache"); err == nil {
		out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-cloud-amd64").Output()
		if m := regexp.MustCompile(`Depends: (linux-image-[0-9][^\s]*-cloud-amd64)`).FindSubmatch(out); err == nil && m != nil {
			pkg = string(m[1])
		}
	}
	if pkg == "" {
		// Offline: use any kernel already in the cache.
		roots, _ := filepath.Glob(filepath.Join(cache, "kernel/*/root"))
		if len(roots) == 0 {
			testsupport.Missing(t, "no Debian cloud kernel: apt-cache cannot name linux-image-cloud-amd64 and the cache has none",
				"Debian's archive in the apt sources (apt-get update), or GANTRY_TEST_CACHE with a kernel/*/root")
		}
		return roots[len(roots)-1]
	}
	dir := filepath.Join(cache, "kernel", pkg)
	root := filepath.Join(dir, "root")
	if _, err := os.Stat(filepath.Join(root, ".complete")); err == nil {
		return root
	}
	testsupport.RequireTools(t, "apt-get", "dpkg-deb")
	must(t, os.MkdirAll(dir, 0o755))
	debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(debs) == 0 {
		cmd := exec.CommandContext(ctx, "apt-get", "download", pkg)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			testsupport.Missing(t, fmt.Sprintf("apt-get download %s: %v\n%s", pkg, err, out), "network access to Debian's archive")
		}
		debs, _ = filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	}
	if len(debs) != 1 {
		t.Fatalf("%s: want one .deb, have %v", dir, debs)
	}
	must(t, os.RemoveAll(root))
	run(ctx, t, "dpkg-deb", "-x", debs[0], root)
	must(t, os.WriteFile(filepath.Join(root, ".complete"), nil, 0o644))
	return root
}

func goBuild(ctx context.Context, t *testing.T, out, pkg string) {
	t.Helper()
	if err := testsupport.GoBuild(ctx, out, pkg, "-trimpath", "-ldflags=-s -w"); err != nil {
		t.Fatal(err)
	}
}

func run(ctx context.Context, t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(fmt.Errorf("setup: %w", err))
	}
}
