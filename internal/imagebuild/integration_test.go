package imagebuild

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/boot/verity"
	"github.com/gantry-os/gantry/pkg/version"
)

// rootSizeGoal is what the compressed root of metal-dev must stay under
// (docs/PERFORMANCE.md, Image size); the test fails above it.
const rootSizeGoal = 80_000_000

// TestBuildMetalDev builds the real metal-dev image twice from the
// repository's packages.lock (a copy: the test never writes into the
// repository), the second time offline from the first's package store, and
// checks the root, the disk and that every output is the same both times. The .debs come from the shared build cache
// ($GANTRY_BUILD_CACHE, else the user cache), so only the first run
// downloads them. -short skips it.
func TestBuildMetalDev(t *testing.T) {
	needTools(t, "apt-get", "apt-cache", "dpkg-deb", "mkfs.erofs", "fsck.erofs", "mkfs.ext4", "debugfs", "go")
	if testing.Short() {
		t.Skip("builds the metal-dev image twice")
	}
	ctx := context.Background()
	src := sourceRoot(t)
	vdir := filepath.Join(src, "variants", "metal-dev")
	lock := filepath.Join(t.TempDir(), LockFile)
	if data, err := os.ReadFile(filepath.Join(vdir, LockFile)); err == nil {
		if err := os.WriteFile(lock, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cache := os.Getenv("GANTRY_BUILD_CACHE")
	if cache == "" {
		var err error
		if cache, err = DefaultCacheDir(); err != nil {
			t.Fatal(err)
		}
	}
	epoch := int64(1700000000)
	// Build 1 exports its .debs into a package store; build 2 is a release
	// rebuild from that store alone, with an empty cache and no archive:
	// every output must be the same bytes.
	store, offlineCache := filepath.Join(t.TempDir(), "store"), t.TempDir()
	var results []*Result
	for i, o := range []Options{{CacheDir: cache, ExportStore: store}, {CacheDir: offlineCache, Store: store}} {
		t0 := time.Now()
		o.VariantDir, o.Source, o.Out, o.LockFile, o.BuildID, o.Epoch = vdir, src, filepath.Join(t.TempDir(), "out"), lock, "itest001", &epoch
		res, err := Build(ctx, o)
		if err != nil {
			t.Fatalf("build %d: %v", i+1, err)
		}
		var steps []string
		for _, s := range res.Timings {
			steps = append(steps, s.Step+" "+round(s.Duration).String())
		}
		t.Logf("build %d: %s; %s", i+1, round(time.Since(t0)), strings.Join(steps, ", "))
		if len(res.Drift) > 0 {
			t.Logf("build %d: the lock drifted from the archive: %v", i+1, res.Drift)
		}
		results = append(results, res)
	}
	if _, err := os.Stat(filepath.Join(offlineCache, "apt")); err == nil {
		t.Error("the build from the store made an apt root")
	}
	res := results[0]
	t.Logf("metal-dev: %d packages, root %s compressed from %s (goal ≤ %s), hash %s, boot %s (vmlinuz %s, initrd %s), %d of %d modules",
		res.PackageCount, mb(res.Root.CompressedBytes), mb(res.Root.UncompressedBytes), mb(rootSizeGoal), mb(res.Root.HashBytes),
		mb(res.Boot.ImageBytes), mb(res.Boot.VmlinuzBytes), mb(res.Boot.InitrdBytes), res.Root.ModulesKept, res.Root.ModulesShipped)
	if res.Root.CompressedBytes > rootSizeGoal {
		t.Errorf("compressed root %s is over the %s goal (see docs/variants.md, Size)", mb(res.Root.CompressedBytes), mb(rootSizeGoal))
	}
	compareOutputs(t, results[0].OutDir, results[1].OutDir)
	checkESP(t, res.OutDir, res.DiskImage)

	root := extractRoot(t, filepath.Join(res.OutDir, "root.img"))
	if bad := walkForbidden(t, root); len(bad) > 0 {
		t.Errorf("forbidden paths in the root: %v", bad)
	}
	for _, gone := range []string{"usr/bin/sh", "usr/bin/bash", "usr/bin/dash", "usr/bin/busybox", "usr/bin/apt", "usr/bin/apt-get",
		"usr/bin/dpkg", "usr/bin/perl", "var/lib/dpkg", "etc/apt", "usr/share/doc", "usr/share/man", "usr/bin/" + InitCommand} {
		if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
			t.Errorf("/%s is in the root", gone)
		}
	}
	v, err := LoadVariant(vdir, version.Version)
	if err != nil {
		t.Fatal(err)
	}
	checkNodeLinks(t, root, v.Gantry.Commands)
	for _, p := range []string{"usr/bin/containerd", "usr/bin/containerd-shim-runc-v2", "usr/sbin/runc", "usr/sbin/chronyd",
		"usr/lib/systemd/systemd", "usr/sbin/mkfs.ext4", "usr/bin/kmod",
		"usr/lib/modules/" + res.Kernel + "/modules.dep.bin", "usr/lib/modules/" + res.Kernel + "/kernel/fs/overlayfs/overlay.ko",
		"usr/lib/systemd/system/multi-user.target.wants/containerd.service", "usr/share/gantry/etc-skel/group",
		"usr/share/gantry/defaults.d/00-base.toml", "usr/share/templates/motd"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("missing /%s: %v", p, err)
		}
	}
	read := func(rel string) string {
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
		}
		return string(data)
	}
	osr := read("usr/lib/os-release")
	for _, want := range []string{"NAME=Gantry\n", "ID=gantry\n", "VERSION_ID=" + version.Version + "\n", "VARIANT_ID=metal-dev\n",
		"BUILD_ID=itest001\n", `PRETTY_NAME="Gantry ` + version.Version + ` (metal-dev)"`} {
		if !strings.Contains(osr, want) {
			t.Errorf("os-release lacks %q:\n%s", want, osr)
		}
	}
	group, passwd := read("etc/group"), read("etc/passwd")
	for _, want := range []string{"api:x:274:\n", "systemd-journal:x:", "_chrony:x:"} {
		if !strings.Contains(group, want) {
			t.Errorf("/etc/group lacks %q", want)
		}
	}
	if !strings.Contains(passwd, "\n_chrony:x:") || strings.Contains(passwd, "/bin/bash") {
		t.Errorf("/etc/passwd:\n%s", passwd)
	}
	if read("etc/machine-id") != "" || read("usr/share/gantry/etc-skel/machine-id") != "" {
		t.Error("machine-id is not empty")
	}

	out := res.OutDir
	if err := verity.Verify(ctx, filepath.Join(out, "root.img"), filepath.Join(out, "hash.img"), res.RootHash); err != nil {
		t.Errorf("verity: %v", err)
	}
	tab, err := disklayout.ReadFile(res.DiskImage)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := tab.Partitions().ByName(disklayout.NameData); !ok || p.Role() != "DATA-A" {
		t.Errorf("no DATA-A named %s in the unified disk", disklayout.NameData)
	}
	if err := disklayout.Verify(res.DiskImage); err != nil {
		t.Error(err)
	}
	cmdline, _ := os.ReadFile(filepath.Join(out, "cmdline"))
	if !strings.HasSuffix(strings.TrimSpace(string(cmdline)), "gantry.roothash="+res.RootHash) {
		t.Errorf("cmdline %q", cmdline)
	}
}
