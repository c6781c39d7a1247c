package imagebuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/boot/verity"
	"github.com/gantry-os/gantry/internal/devtools/k8stools"
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
	Variant        string           `json:"variant"`
	Arch           string           `json:"arch"`
	Version        string           `json:"version"`
	BuildID        string           `json:"build_id"`
	Epoch          int64            `json:"source_date_epoch"`
	GoVersion      string           `json:"go_version"`
	Kernel         string           `json:"kernel"`
	Cmdline        string           `json:"cmdline"`
	RootHash       string           `json:"root_hash"`
	Salt           string           `json:"salt"`
	DataBlocks     uint64           `json:"data_blocks"`
	PartitionPlan  string           `json:"partition_plan"`
	OSImageSizeGiB int              `json:"os_image_size_gib"`
	PackageCount   int              `json:"package_count"`
	Packages       []LockedPackage  `json:"packages"`
	Commands       []string         `json:"commands"`
	Tools          []InstalledTool  `json:"tools,omitempty"`
	Images         []PreloadedImage `json:"images,omitempty"`
	Root           RootSummary      `json:"root"`
	Boot           BootSummary      `json:"boot"`
	ESP            ESPSummary       `json:"esp"`
	Outputs        []Output         `json:"outputs"`
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

// Build builds a variant's images; see the package documentation. It runs
// buildSteps in order, each reported on o.Progress with its result and time;
// the Gantry commands build beside the package steps (goStep).
func Build(ctx context.Context, o Options) (res *Result, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b := &builder{o: o, cancel: cancel}
	b.p = newProgress(o.Progress, len(buildSteps)+1)
	defer b.close()
	defer func() {
		if err != nil && b.goCh != nil {
			cancel()
			// A failed Go build cancels the package steps; report its
			// error, not the cancelled step's.
			if d := <-b.goCh; d.err != nil && !errors.Is(d.err, context.Canceled) {
				err = d.err
			}
		}
	}()
	for i, s := range buildSteps {
		end := b.p.step(s.name)
		detail, err := s.run(ctx, b)
		end(detail, err)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			// The inputs are known: the work folder, then the Go build.
			if err := b.startWork(); err != nil {
				return nil, err
			}
			b.startGoBuild(ctx)
			b.startTools(ctx)
		}
	}
	return b.result(), nil
}

// buildStep is one named step of the image build.
type buildStep struct {
	name string
	// run does the step and returns the short result shown after its name.
	run func(ctx context.Context, b *builder) (detail string, err error)
}

// buildSteps are the image build, in order; each lives in a step_*.go file.
var buildSteps = []buildStep{
	{"inputs", stepInputs},
	{"resolve packages", stepResolve},
	{"fetch packages", stepFetch},
	{"extract packages", stepExtract},
	{"configure root", stepConfigureRoot},
	{"kernel and modules", stepKernel},
	{"prune and check root", stepPrune},
	{"initramfs", stepInitramfs},
	{"root filesystem (erofs)", stepErofs},
	{"dm-verity hash tree", stepVerity},
	{"boot filesystem (ext4)", stepBootFS},
	{"EFI system partition (FAT)", stepESP},
	{"disk image", stepDisk},
	{"outputs", stepOutputs},
}

// builder is one build's state, handed from step to step.
type builder struct {
	o      Options
	p      *progress
	cancel context.CancelFunc
	in     *inputs
	v      *Variant
	// work is the work folder under the output folder; binDir holds the
	// Go build's binaries.
	work, binDir   string
	goCh           chan goDone
	goVersion      string
	toolsCh        chan toolsDone
	installedTools []InstalledTool
	preloaded      []PreloadedImage

	release func() // the cache's lock
	src     *packageSource
	rr      *resolveResult
	lock    *Lock
	files   []pkgFile

	st         *stage
	units      *unitsResult
	k          *kernelInfo
	vmlinuz    string
	bootLoader string
	pruned     *pruneResult
	rootFiles  int
	rootBytes  int64

	initrdImg, rootImg, hashImg, bootImg, espImg string
	initrdSize, rootSize                         int64
	vr                                           verity.Result
	cmdline                                      string
	esp                                          ESPSummary
	diskName, dataName                           string
	sum                                          Summary
}

// goDone is the Go build's end.
type goDone struct {
	version string
	err     error
}

// startWork makes the output and work folders.
func (b *builder) startWork() error {
	if err := os.MkdirAll(b.in.out, 0o755); err != nil {
		return fmt.Errorf("output folder: %w", err)
	}
	work, err := os.MkdirTemp(b.in.out, ".work-")
	if err != nil {
		return fmt.Errorf("work folder: %w", err)
	}
	b.work, b.binDir = work, filepath.Join(work, "bin")
	return nil
}

// startGoBuild builds the node binary and gantry-init in the background
// while the packages are resolved, fetched and extracted, then checks the
// variant's commands against the node binary's. A failure cancels the build.
func (b *builder) startGoBuild(ctx context.Context) {
	goarch, _ := debArch(b.v.Arch)
	b.goCh = make(chan goDone, 1)
	go func() {
		end := b.p.step("build Gantry commands")
		gv, err := goBuild(ctx, b.in.source, goarch, b.binDir, []string{NodeBinary, InitCommand})
		if err == nil {
			var have []string
			if have, err = nodeCommands(ctx, b.in.source, goarch, b.binDir); err == nil {
				err = checkNodeCommands(b.v, have)
			}
		}
		end(fmt.Sprintf("%s (%s) for %d commands + %s, %s", NodeBinary, mb(fileSize(filepath.Join(b.binDir, NodeBinary))),
			len(b.v.Gantry.Commands), InitCommand, gv), err)
		if err != nil {
			b.cancel()
		}
		b.goCh <- goDone{gv, err}
	}()
}

// toolsDone is the tools modules' build's end.
type toolsDone struct {
	tools *k8stools.Tools
	err   error
}

// startTools builds (or finds in the cache, <cache>/k8s) the tools
// modules' binaries in the background when the variant installs any.
func (b *builder) startTools(ctx context.Context) {
	if len(b.v.Tools.Install) == 0 {
		return
	}
	b.p.addSteps(1)
	b.toolsCh = make(chan toolsDone, 1)
	go func() {
		end := b.p.step("tools (gantry k8s-tools)")
		t, err := k8stools.Ensure(ctx, k8stools.Options{Source: b.in.source, CacheDir: filepath.Join(b.in.cacheDir, "k8s")})
		detail := ""
		if err == nil {
			detail = fmt.Sprintf("Kubernetes %s, containerd %s, CNI plugins %s", t.Kubernetes, t.Containerd, t.CNIPlugins)
		}
		end(detail, err)
		if err != nil {
			b.cancel()
		}
		b.toolsCh <- toolsDone{t, err}
	}()
}

// waitTools waits for the tools' build (nil when the variant has none).
func (b *builder) waitTools() (*k8stools.Tools, error) {
	if b.toolsCh == nil {
		return nil, nil
	}
	d := <-b.toolsCh
	b.toolsCh <- d
	return d.tools, d.err
}

// waitGo waits for the Go build and returns its error.
func (b *builder) waitGo() error {
	d := <-b.goCh
	b.goCh <- d
	b.goVersion = d.version
	return d.err
}

// unlock releases the cache once (after the fetch, or at the end).
func (b *builder) unlock() {
	if b.release != nil {
		b.release()
		b.release = nil
	}
}

// close releases what the steps hold: the cache, the staging tree and,
// unless kept, the work folder.
func (b *builder) close() {
	b.unlock()
	if b.st != nil {
		b.st.close()
	}
	if b.work == "" {
		return
	}
	if b.o.KeepWork {
		b.p.logf("work folder kept: %s", b.work)
		return
	}
	os.RemoveAll(b.work)
}

// result is the finished build.
func (b *builder) result() *Result {
	return &Result{
		Summary: b.sum, OutDir: b.in.out, DiskImage: filepath.Join(b.in.out, b.diskName),
		LockWritten: b.rr.resolved, LockPath: b.in.lockPath, Drift: b.rr.drift, Timings: b.p.done(),
	}
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
	if in.epoch, err = sourceEpoch(ctx, in.source, o.Epoch); err != nil {
		return nil, err
	}

	return in, nil
}

// sourceEpoch is SOURCE_DATE_EPOCH for a build: the given one, else the
// environment's, else the source tree's last commit time.
func sourceEpoch(ctx context.Context, source string, given *int64) (int64, error) {
	var epoch int64
	switch {
	case given != nil:
		epoch = *given
	case os.Getenv("SOURCE_DATE_EPOCH") != "":
		n, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("inputs: SOURCE_DATE_EPOCH: %w", err)
		}
		epoch = n
	default:
		out, err := (command{name: "git", args: []string{"-C", source, "log", "-1", "--format=%ct"}}).run(ctx)
		if err != nil {
			return 0, fmt.Errorf("inputs: epoch from git (pass --epoch or SOURCE_DATE_EPOCH outside a git checkout): %w", err)
		}
		if epoch, err = strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err != nil {
			return 0, fmt.Errorf("inputs: epoch from git: %w", err)
		}
	}
	if epoch < 0 || epoch > 1<<32-1 {
		return 0, fmt.Errorf("inputs: epoch %d out of range", epoch)
	}
	return epoch, nil
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
