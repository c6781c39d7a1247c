package imagebuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/boot/initrd"
	"github.com/gantry-os/gantry/internal/boot/verity"
	"github.com/gantry-os/gantry/pkg/version"
)

// Options are the inputs of a build besides the variant folder's contents.
type Options struct {
	// VariantDir is the variant folder (variants/<name> or any other).
	VariantDir string
	// Source is the Gantry source tree whose commands go into the image
	// (default: the module root above the working folder).
	Source string
	// Out is the output folder (default <Source>/build/<variant>).
	Out string
	// CacheDir keeps .debs and apt's private roots (default
	// DefaultCacheDir()).
	CacheDir string
	// LockFile is the package lock (default <VariantDir>/packages.lock).
	LockFile string
	// UpdateLock re-resolves the closure even if the lock is current;
	// Locked fails instead of resolving when the lock is missing or stale.
	UpdateLock, Locked bool
	// Version overrides the variant's version.
	Version string
	// BuildID names the build (default: the source tree's git commit,
	// abbreviated to 8 digits).
	BuildID string
	// Epoch is SOURCE_DATE_EPOCH: every timestamp in the images (default:
	// $SOURCE_DATE_EPOCH, then the source tree's last commit time).
	Epoch *int64
	// RootJSON, if set, is installed as the TUF trust anchor.
	RootJSON string
	// Store, if set, is a package store (ExportStore's output) to build
	// from alone: the archive is never asked, so a release rebuilds after
	// its packages left the archive.
	Store string
	// ExportStore, if set, receives every .deb of the build (the store's
	// layout: debs/<sha256>.deb) and a copy of the lock.
	ExportStore string
	// KeepWork keeps the work folder (staging tree, intermediate images).
	KeepWork bool
	// Progress receives the step display (nil: none).
	Progress io.Writer
}

// Output is one file of the build.
type Output struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Summary is build.json: what was built, from what, and how big. It holds
// nothing that differs between two builds of the same inputs.
type Summary struct {
	Variant        string          `json:"variant"`
	Arch           string          `json:"arch"`
	Version        string          `json:"version"`
	BuildID        string          `json:"build_id"`
	Epoch          int64           `json:"source_date_epoch"`
	GoVersion      string          `json:"go_version"`
	Kernel         string          `json:"kernel"`
	Cmdline        string          `json:"cmdline"`
	RootHash       string          `json:"root_hash"`
	Salt           string          `json:"salt"`
	DataBlocks     uint64          `json:"data_blocks"`
	PartitionPlan  string          `json:"partition_plan"`
	OSImageSizeGiB int             `json:"os_image_size_gib"`
	PackageCount   int             `json:"package_count"`
	Packages       []LockedPackage `json:"packages"`
	Commands       []string        `json:"commands"`
	Root           RootSummary     `json:"root"`
	Boot           BootSummary     `json:"boot"`
	ESP            ESPSummary      `json:"esp"`
	Outputs        []Output        `json:"outputs"`
}

// RootSummary describes the root filesystem.
type RootSummary struct {
	Files             int      `json:"files"`
	UncompressedBytes int64    `json:"uncompressed_bytes"`
	CompressedBytes   int64    `json:"compressed_bytes"`
	HashBytes         int64    `json:"hash_bytes"`
	ModulesKept       int      `json:"kernel_modules_kept"`
	ModulesShipped    int      `json:"kernel_modules_shipped"`
	UnitsInstalled    []string `json:"units_installed"`
	PrunedBytes       int64    `json:"pruned_bytes"`
	RemovedScripts    []string `json:"removed_scripts"`
	FlattenedOwners   int      `json:"flattened_owners"`
}

// BootSummary describes the BOOT filesystem.
type BootSummary struct {
	VmlinuzBytes int64 `json:"vmlinuz_bytes"`
	InitrdBytes  int64 `json:"initrd_bytes"`
	ImageBytes   int64 `json:"image_bytes"`
}

// ESPSummary describes the EFI system partition of the UEFI chain.
type ESPSummary struct {
	// Cmdline is the selector kernel's command line (the loader entry's).
	Cmdline         string `json:"cmdline"`
	BootLoaderBytes int64  `json:"boot_loader_bytes"`
	SelectorBytes   int64  `json:"selector_initrd_bytes"`
	ImageBytes      int64  `json:"image_bytes"`
}

// Result is a finished build.
type Result struct {
	Summary
	// OutDir holds the outputs; DiskImage is the whole-disk image's path.
	OutDir, DiskImage string
	// LockWritten is set when the build (re)wrote the package lock, and
	// LockPath is where the lock is.
	LockWritten bool
	LockPath    string
	// Drift lists the packages whose lock lines changed when the lock was
	// resolved again (a pin left the archive, or the request changed).
	Drift []Drift
	// Timings are the steps' durations.
	Timings []StepTiming
}

const totalSteps = 15

// Build builds a variant's images; see the package documentation.
func Build(ctx context.Context, o Options) (res *Result, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := newProgress(o.Progress, totalSteps)

	// Inputs: the variant, version, build ID, epoch, folders.
	end := p.step("inputs")
	in, err := resolveInputs(ctx, o)
	if err != nil {
		end("", err)
		return nil, err
	}
	v := in.variant
	end(fmt.Sprintf("%s %s %s, build %s, epoch %d", v.Name, v.Arch, v.Version, in.buildID, in.epoch), nil)

	if err := os.MkdirAll(in.out, 0o755); err != nil {
		return nil, fmt.Errorf("output folder: %w", err)
	}
	work, err := os.MkdirTemp(in.out, ".work-")
	if err != nil {
		return nil, fmt.Errorf("work folder: %w", err)
	}
	defer func() {
		if o.KeepWork {
			p.logf("work folder kept: %s", work)
			return
		}
		os.RemoveAll(work)
	}()

	// The node binary and gantry-init build in the background while the
	// packages are resolved, fetched and extracted; then the variant's
	// commands are checked against the node binary's.
	goarch, _ := debArch(v.Arch)
	binDir := filepath.Join(work, "bin")
	type goDone struct {
		version string
		err     error
	}
	goCh := make(chan goDone, 1)
	go func() {
		end := p.step("build Gantry commands")
		gv, err := goBuild(ctx, in.source, goarch, binDir, []string{NodeBinary, InitCommand})
		if err == nil {
			var have []string
			if have, err = nodeCommands(ctx, in.source, goarch, binDir); err == nil {
				err = checkNodeCommands(v, have)
			}
		}
		end(fmt.Sprintf("%s (%s) for %d commands + %s, %s", NodeBinary, mb(fileSize(filepath.Join(binDir, NodeBinary))),
			len(v.Gantry.Commands), InitCommand, gv), err)
		if err != nil {
			cancel()
		}
		goCh <- goDone{gv, err}
	}()
	waitGo := func() (goDone, error) {
		d := <-goCh
		goCh <- d
		return d, d.err
	}
	defer func() {
		if err != nil {
			cancel()
			// A failed Go build cancels the package steps; report its
			// error, not the cancelled step's.
			if d := <-goCh; d.err != nil && !errors.Is(d.err, context.Canceled) {
				err = d.err
			}
		}
	}()

	// Resolve the package closure (or take the lock).
	end = p.step("resolve packages")
	cache, release, err := openCache(ctx, in.cacheDir, func() { p.logf("waiting for another build to release the cache %s", in.cacheDir) })
	if err != nil {
		end("", err)
		return nil, err
	}
	var once sync.Once
	unlock := func() { once.Do(release) }
	defer unlock()
	src := &packageSource{cache: cache, arch: goarch, dist: v.Distribution}
	if o.Store != "" {
		src.offline = true
		if src.store, err = openStore(o.Store, false); err != nil {
			end("", err)
			return nil, err
		}
	}
	existing, err := ReadLock(in.lockPath)
	if err != nil && !o.UpdateLock {
		end("", err)
		return nil, err
	}
	rr, err := src.resolve(ctx, v, existing, in.lockPath, o.UpdateLock, o.Locked)
	if err != nil {
		end("", err)
		return nil, err
	}
	lock := rr.lock
	if rr.resolved {
		if err := writeLock(in.lockPath, v.Name, lock); err != nil {
			end("", err)
			return nil, err
		}
		end(fmt.Sprintf("%d packages resolved with apt (%s); wrote %s", len(lock.Packages), rr.why, in.lockPath), nil)
		if len(rr.drift) > 0 {
			p.logf("PACKAGE DRIFT: %d lock line(s) changed (%s):", len(rr.drift), rr.why)
			for _, d := range rr.drift {
				p.logf("  %s", d)
			}
		}
	} else {
		end(fmt.Sprintf("%d packages from %s", len(lock.Packages), in.lockPath), nil)
	}

	// Fetch the .debs into the cache; then the disk can be planned, since
	// the lock is final.
	end = p.step("fetch packages")
	var export *debCache
	if o.ExportStore != "" {
		if export, err = openStore(o.ExportStore, true); err != nil {
			end("", err)
			return nil, err
		}
	}
	files, downloaded, err := src.fetch(ctx, lock, work, export)
	if err != nil {
		end("", err)
		return nil, err
	}
	var debBytes int64
	for _, f := range files {
		debBytes += f.Size
	}
	from := fmt.Sprintf("%d downloaded", downloaded)
	if src.offline {
		from = "from the package store, offline"
	}
	if export != nil {
		if err := export.addLock(fmt.Sprintf("%s-%s-%s.lock", v.Name, v.Version, in.buildID), lock.Marshal(v.Name)); err != nil {
			end("", err)
			return nil, err
		}
		from += ", exported to " + o.ExportStore
	}
	end(fmt.Sprintf("%d .debs, %s (%s, SHA-256 verified)", len(files), mb(debBytes), from), nil)
	unlock()
	if err := in.plan(lock); err != nil {
		return nil, err
	}

	// Extract.
	end = p.step("extract packages")
	st, err := newStage(filepath.Join(work, "root"))
	if err != nil {
		end("", err)
		return nil, err
	}
	defer st.close()
	for _, f := range files {
		if err := st.extractDeb(ctx, f.Path); err != nil {
			end("", err)
			return nil, fmt.Errorf("extract packages: %s: %w", f.Name, err)
		}
	}
	nf, nb, err := st.size()
	if err != nil {
		end("", err)
		return nil, err
	}
	end(fmt.Sprintf("%d files, %s, no maintainer scripts", nf, mb(nb)), nil)

	// Configure the root.
	gd, err := waitGo()
	if err != nil {
		return nil, err
	}
	end = p.step("configure root")
	acc, err := configureRoot(st, v, releaseInfo{variant: v.Name, version: v.Version, buildID: in.buildID, arch: v.Arch}, lock, in.rootJSON)
	if err == nil {
		err = installCommands(st, binDir, v.Gantry.Commands)
	}
	var units *unitsResult
	if err == nil {
		units, err = installUnits(st, v, []string{filepath.Join(in.source, "variants", "shared", "units"), filepath.Join(v.Dir, "units")})
	}
	if err != nil {
		end("", err)
		return nil, err
	}
	end(fmt.Sprintf("%d users, %d groups, %d Gantry units, %d unit links", len(acc.users), len(acc.groups), len(units.installed), units.links), nil)

	// Kernel and modules.
	end = p.step("kernel and modules")
	vmlinuz := filepath.Join(work, "vmlinuz")
	k, err := takeKernel(st, vmlinuz)
	bootLoader := filepath.Join(work, "systemd-bootx64.efi")
	if err == nil {
		err = takeBootLoader(st, bootLoader)
	}
	if err == nil {
		err = selectModules(st, k, v.Kernel.Modules, append(slices.Clone(v.Kernel.InitramfsModules), SelectorModules...))
	}
	if err == nil {
		err = depmod(ctx, st, k)
	}
	if err != nil {
		end("", err)
		return nil, err
	}
	end(fmt.Sprintf("kernel %s, %d of %d modules kept", k.Release, k.Kept, k.Total), nil)

	// Prune, check, seed /etc.
	end = p.step("prune and check root")
	pr, err := prune(st, v.Root.Remove)
	if err == nil {
		err = st.finish()
	}
	if err == nil {
		err = makeEtcSkel(st)
	}
	if err == nil {
		err = checkSymlinks(st, v)
	}
	if err == nil {
		err = assertClean(st)
	}
	if err != nil {
		end("", err)
		return nil, err
	}
	for _, u := range pr.unmatched {
		p.logf("note: root.remove pattern %s matched nothing", u)
	}
	nf, nb, err = st.size()
	if err != nil {
		end("", err)
		return nil, err
	}
	end(fmt.Sprintf("removed %d paths (%s, %d dead scripts); root has %d files, %s; no shell, apt, dpkg or perl",
		pr.paths, mb(pr.bytes), len(pr.scripts), nf, mb(nb)), nil)

	// Initramfs.
	end = p.step("initramfs")
	initrdImg := filepath.Join(work, "initrd.img")
	err = initrd.Build(ctx, initrd.Options{
		Init:       filepath.Join(binDir, InitCommand),
		ModulesDir: st.abs(k.ModulesDir),
		Modules:    append([]string(nil), v.Kernel.InitramfsModules...),
		Out:        initrdImg,
		Epoch:      time.Unix(in.epoch, 0).UTC(),
	})
	if err != nil {
		err = fmt.Errorf("initramfs: %w", err)
		end("", err)
		return nil, err
	}
	initrdSize := fileSize(initrdImg)
	end(fmt.Sprintf("%s, %d modules", mb(initrdSize), len(v.Kernel.InitramfsModules)), nil)

	// Root filesystem.
	end = p.step("root filesystem (erofs)")
	rootImg := filepath.Join(work, "root.img")
	if err := makeErofs(ctx, st.dir, rootImg, erofsOptions{
		compression: v.Image.RootCompression, clusterKiB: v.Image.RootClusterKiB, epoch: in.epoch, uuid: in.uuid("root"),
	}); err != nil {
		end("", err)
		return nil, err
	}
	rootSize := fileSize(rootImg)
	end(fmt.Sprintf("%s compressed from %s (%s)", mb(rootSize), mb(nb), v.Image.RootCompression), nil)

	// Verity.
	end = p.step("dm-verity hash tree")
	hashImg := filepath.Join(work, "hash.img")
	vr, err := verity.Create(ctx, rootImg, hashImg, verity.Options{})
	if err != nil {
		err = fmt.Errorf("verity: %w", err)
		end("", err)
		return nil, err
	}
	end(fmt.Sprintf("root hash %s, %d data blocks, %s of hashes", vr.RootHash, vr.DataBlocks, mb(vr.HashSize)), nil)

	// BOOT filesystem.
	end = p.step("boot filesystem (ext4)")
	setA, err := in.layout.OS.Partitions.Set(disklayout.SetA)
	if err != nil {
		end("", err)
		return nil, fmt.Errorf("layout: %w", err)
	}
	cmdline := strings.Join(append(append([]string(nil), v.Kernel.Parameters...), "gantry.roothash="+vr.RootHash), " ")
	cmdlineFile := filepath.Join(work, "cmdline")
	if err := os.WriteFile(cmdlineFile, []byte(cmdline+"\n"), 0o644); err != nil {
		end("", err)
		return nil, fmt.Errorf("cmdline: %w", err)
	}
	bootImg := filepath.Join(work, "boot.img")
	if err := makeExt4(ctx, work, bootImg, ext4Options{
		label: "GANTRY-BOOT", size: setA.Boot.Size, uuid: in.uuid("boot"), hashSeed: in.uuid("boot-hash-seed"), epoch: in.epoch,
		extra: []string{"-O", "^has_journal"},
		files: map[string]string{"vmlinuz": vmlinuz, "initrd.img": initrdImg, "cmdline": cmdlineFile},
	}); err != nil {
		end("", err)
		return nil, fmt.Errorf("boot filesystem: %w", err)
	}
	end(fmt.Sprintf("%s partition image: vmlinuz, initrd.img, cmdline", mb(setA.Boot.Size)), nil)

	// EFI system partition (esp.go): systemd-boot, the kernel and the
	// selector initramfs.
	end = p.step("EFI system partition (FAT)")
	espImg, esp, err := buildESP(ctx, work, in, k, st.abs(k.ModulesDir), filepath.Join(binDir, InitCommand), bootLoader, vmlinuz)
	if err != nil {
		end("", err)
		return nil, err
	}
	end(fmt.Sprintf("%s: systemd-boot, vmlinuz, selector initramfs %s", mb(esp.ImageBytes), mb(esp.SelectorBytes)), nil)

	// Disk images.
	end = p.step("disk image")
	base := fmt.Sprintf("gantry-%s-%s-%s-%s", v.Name, v.Arch, v.Version, in.buildID)
	diskName, dataName := base+".img", ""
	if in.layout.Data != nil {
		dataName = base + "-data.img"
	}
	if err := makeDisk(ctx, work, diskOptions{
		layout: in.layout, esp: espImg, boot: bootImg, root: rootImg, hash: hashImg,
		out: filepath.Join(work, diskName), dataOut: filepath.Join(work, dataName), epoch: in.epoch,
		privateUUID: in.uuid("private"), privateSeed: in.uuid("private-hash-seed"),
		dataID: in.uuid("data"), dataHS: in.uuid("data-hash-seed"),
	}); err != nil {
		end("", err)
		return nil, err
	}
	end(fmt.Sprintf("%s (%d GiB, %s plan; set A filled, set B empty)", diskName, in.layout.OS.Size>>30, v.Image.PartitionPlan), nil)

	// Outputs: hashes, build.json, then into the output folder.
	end = p.step("outputs")
	if err := os.WriteFile(filepath.Join(work, "roothash"), []byte(vr.RootHash+"\n"), 0o644); err != nil {
		end("", err)
		return nil, fmt.Errorf("outputs: %w", err)
	}
	names := []string{diskName, "esp.img", "boot.img", "root.img", "hash.img", "roothash", "vmlinuz", "initrd.img", "cmdline"}
	if dataName != "" {
		names = append(names, dataName)
	}
	sum := Summary{
		Variant: v.Name, Arch: v.Arch, Version: v.Version, BuildID: in.buildID, Epoch: in.epoch, GoVersion: gd.version,
		Kernel: k.Release, Cmdline: cmdline, RootHash: vr.RootHash, Salt: vr.Salt, DataBlocks: vr.DataBlocks,
		PartitionPlan: v.Image.PartitionPlan, OSImageSizeGiB: v.Image.OSImageSizeGiB,
		PackageCount: len(lock.Packages), Packages: lock.Packages, Commands: v.Gantry.Commands,
		Root: RootSummary{
			Files: nf, UncompressedBytes: nb, CompressedBytes: rootSize, HashBytes: fileSize(hashImg),
			ModulesKept: k.Kept, ModulesShipped: k.Total, UnitsInstalled: units.installed, PrunedBytes: pr.bytes,
			RemovedScripts: pr.scripts, FlattenedOwners: len(st.foreignOwners),
		},
		Boot: BootSummary{VmlinuzBytes: fileSize(vmlinuz), InitrdBytes: initrdSize, ImageBytes: fileSize(bootImg)},
		ESP:  esp,
	}
	if sum.Root.RemovedScripts == nil {
		sum.Root.RemovedScripts = []string{}
	}
	if sum.Outputs, err = hashFiles(work, names); err != nil {
		end("", err)
		return nil, fmt.Errorf("outputs: %w", err)
	}
	js, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		end("", err)
		return nil, fmt.Errorf("outputs: build.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(work, "build.json"), append(js, '\n'), 0o644); err != nil {
		end("", err)
		return nil, fmt.Errorf("outputs: %w", err)
	}
	// Disk images of earlier builds of this variant would not match the new
	// kernel command line (its root hash): remove them so nothing boots one.
	if stale, err := filepath.Glob(filepath.Join(in.out, fmt.Sprintf("gantry-%s-%s-*.img", v.Name, v.Arch))); err == nil {
		for _, f := range stale {
			os.Remove(f)
		}
	}
	for _, n := range append(names, "build.json") {
		if err := os.Rename(filepath.Join(work, n), filepath.Join(in.out, n)); err != nil {
			end("", err)
			return nil, fmt.Errorf("outputs: %w", err)
		}
	}
	end(fmt.Sprintf("%s: root %s, root hash %s", in.out, mb(rootSize), vr.RootHash[:16]+"…"), nil)
	return &Result{
		Summary: sum, OutDir: in.out, DiskImage: filepath.Join(in.out, diskName),
		LockWritten: rr.resolved, LockPath: in.lockPath, Drift: rr.drift, Timings: p.done(),
	}, nil
}

// inputs are the build's resolved inputs.
type inputs struct {
	variant               *Variant
	source, out, cacheDir string
	lockPath, rootJSON    string
	buildID               string
	epoch                 int64
	layout                *disklayout.Layout
	// digest hashes every input that determines the images; the
	// filesystem UUIDs and partition GUIDs derive from it.
	digest []byte
}

// uuid derives a filesystem UUID (version 4 form) for label.
func (in *inputs) uuid(label string) string {
	h := sha256.Sum256(append(append([]byte(nil), in.digest...), []byte("\x00"+label)...))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func resolveInputs(ctx context.Context, o Options) (*inputs, error) {
	if o.VariantDir == "" {
		return nil, errors.New("inputs: no variant folder")
	}
	in := &inputs{}
	var err error
	if in.source, err = findSource(o.Source, o.VariantDir); err != nil {
		return nil, err
	}
	v, err := LoadVariant(o.VariantDir, version.Version)
	if err != nil {
		return nil, err
	}
	if o.Version != "" {
		v.Version = o.Version
	}
	in.variant = v
	for _, d := range []string{"defaults.d", "templates"} {
		if fi, err := os.Stat(filepath.Join(v.Dir, d)); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("variant %s: no %s folder in %s", v.Name, d, v.Dir)
		}
	}
	in.out = o.Out
	if in.out == "" {
		in.out = filepath.Join(in.source, "build", v.Name)
	}
	if in.out, err = filepath.Abs(in.out); err != nil {
		return nil, fmt.Errorf("output folder: %w", err)
	}
	in.cacheDir = o.CacheDir
	if in.cacheDir == "" {
		if in.cacheDir, err = DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	in.lockPath = o.LockFile
	if in.lockPath == "" {
		in.lockPath = filepath.Join(v.Dir, LockFile)
	}
	in.rootJSON = o.RootJSON
	if in.rootJSON != "" {
		if _, err := os.Stat(in.rootJSON); err != nil {
			return nil, fmt.Errorf("inputs: --root-json: %w", err)
		}
	}
	in.buildID = o.BuildID
	if in.buildID == "" {
		out, err := (command{name: "git", args: []string{"-C", in.source, "rev-parse", "--short=8", "HEAD"}}).run(ctx)
		if err != nil {
			return nil, fmt.Errorf("inputs: build ID from git (pass --build-id outside a git checkout): %w", err)
		}
		in.buildID = strings.TrimSpace(string(out))
	}
	if !nameRE.MatchString(strings.ToLower(in.buildID)) {
		return nil, fmt.Errorf("inputs: build ID %q: want letters, digits, dots and dashes", in.buildID)
	}
	switch {
	case o.Epoch != nil:
		in.epoch = *o.Epoch
	case os.Getenv("SOURCE_DATE_EPOCH") != "":
		n, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("inputs: SOURCE_DATE_EPOCH: %w", err)
		}
		in.epoch = n
	default:
		out, err := (command{name: "git", args: []string{"-C", in.source, "log", "-1", "--format=%ct"}}).run(ctx)
		if err != nil {
			return nil, fmt.Errorf("inputs: epoch from git (pass --epoch or SOURCE_DATE_EPOCH outside a git checkout): %w", err)
		}
		if in.epoch, err = strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err != nil {
			return nil, fmt.Errorf("inputs: epoch from git: %w", err)
		}
	}
	if in.epoch < 0 || in.epoch > 1<<32-1 {
		return nil, fmt.Errorf("inputs: epoch %d out of range", in.epoch)
	}

	return in, nil
}

// plan computes the digest of every input that determines the images (the
// variant file, the locked packages, version, build ID, epoch, root.json)
// and, from it, the disk layout with reproducible GUIDs.
func (in *inputs) plan(lock *Lock) error {
	v := in.variant
	h := sha256.New()
	fmt.Fprintf(h, "gantry image v1\x00%s\x00%s\x00%s\x00%s\x00%d\x00", v.Name, v.Arch, v.Version, in.buildID, in.epoch)
	h.Write(v.Raw)
	io.WriteString(h, "\x00"+lockDigest(lock)+"\x00")
	if in.rootJSON != "" {
		data, err := os.ReadFile(in.rootJSON)
		if err != nil {
			return fmt.Errorf("inputs: --root-json: %w", err)
		}
		h.Write(data)
	}
	in.digest = h.Sum(nil)
	var err error
	in.layout, err = disklayout.Plan(disklayout.Options{
		OSImageGiB: v.Image.OSImageSizeGiB, DataImageGiB: v.Image.DataImageSizeGiB,
		PartitionPlan: disklayout.PartitionPlan(v.Image.PartitionPlan),
		Rand:          disklayout.SeededRand(append(append([]byte(nil), in.digest...), "gpt"...)),
	})
	if err != nil {
		return fmt.Errorf("inputs: %w", err)
	}
	return nil
}

// findSource returns the Gantry source tree: dir if given, else the module
// root above the working folder or above the variant folder.
func findSource(dir, variantDir string) (string, error) {
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", fmt.Errorf("source tree: %w", err)
		}
		if !isGantryModule(abs) {
			return "", fmt.Errorf("source tree: %s has no go.mod of module %s", abs, modulePath)
		}
		return abs, nil
	}
	wd, _ := os.Getwd()
	for _, start := range []string{wd, variantDir} {
		d, err := filepath.Abs(start)
		if err != nil {
			continue
		}
		for {
			if isGantryModule(d) {
				return d, nil
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", fmt.Errorf("source tree: no go.mod of module %s above %s or %s (pass --source)", modulePath, wd, variantDir)
}

const modulePath = "github.com/gantry-os/gantry"

func isGantryModule(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	return strings.TrimSpace(string(first)) == "module "+modulePath
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}
