package imagebuild

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gantry-os/gantry/pkg/version"
)

// ContainerOptions are the inputs of a container image build besides the
// image's folder.
type ContainerOptions struct {
	// Dir is the image's folder (containers/<name>).
	Dir string
	// Source is the Gantry source tree the commands are built from
	// (default: the module root above the working folder).
	Source string
	// Out is the output folder (default <Source>/build/containers/<name>):
	// it receives the OCI image layout (oci/) and image.json.
	Out string
	// CacheDir keeps .debs and apt's private roots (default
	// DefaultCacheDir()).
	CacheDir string
	// LockFile is the package lock (default <Dir>/packages.lock).
	LockFile string
	// UpdateLock and Locked are as for Build.
	UpdateLock, Locked bool
	// Version is the image's version label and default tag (default: the
	// source tree's version).
	Version string
	// Epoch is SOURCE_DATE_EPOCH, every timestamp in the image (default: as
	// for Build).
	Epoch *int64
	// Push are references the image is pushed to (registry/repo:tag).
	// Registries on loopback, or named in Insecure, are spoken to over
	// plain HTTP.
	Push     []string
	Insecure []string
	// Progress receives the step display (nil: none).
	Progress io.Writer
}

// ContainerResult is a finished container image build.
type ContainerResult struct {
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Digest  string   `json:"digest"`
	Layout  string   `json:"layout"`
	Pushed  []string `json:"pushed,omitempty"`
	// LayerBytes is the compressed layer's size; Files the layer's entries.
	LayerBytes int64 `json:"layer_bytes"`
	Files      int   `json:"files"`
	Packages   int   `json:"packages"`
	Epoch      int64 `json:"source_date_epoch"`
}

// containerBuilder is one container build's state, handed from step to step.
type containerBuilder struct {
	o       ContainerOptions
	p       *progress
	spec    *ContainerSpec
	source  string
	out     string
	work    string
	epoch   time.Time
	lock    *Lock
	src     *packageSource
	release func()
	files   []pkgFile
	st      *stage
	tarPath string
	img     v1.Image
	res     ContainerResult
}

// containerSteps are the container image build, in order.
var containerSteps = []struct {
	name string
	run  func(*containerBuilder, context.Context) (string, error)
}{
	{"inputs", (*containerBuilder).inputs},
	{"resolve and fetch packages", (*containerBuilder).packages},
	{"extract packages", (*containerBuilder).extract},
	{"Gantry commands and files", (*containerBuilder).gantry},
	{"layer", (*containerBuilder).layer},
	{"image", (*containerBuilder).image},
	{"push", (*containerBuilder).push},
}

// BuildContainer builds a container image from its folder: Debian packages
// from the pinned lock, Gantry's static commands and the folder's files, in
// one layer with every timestamp at the epoch, so that the same inputs give
// the same image digest. It writes an OCI image layout and pushes it where
// asked.
func BuildContainer(ctx context.Context, o ContainerOptions) (*ContainerResult, error) {
	b := &containerBuilder{o: o, p: newProgress(o.Progress, len(containerSteps))}
	defer b.close()
	for _, s := range containerSteps {
		end := b.p.step(s.name)
		detail, err := s.run(b, ctx)
		end(detail, err)
		if err != nil {
			return nil, err
		}
	}
	return &b.res, nil
}

func (b *containerBuilder) close() {
	if b.release != nil {
		b.release()
	}
	if b.st != nil {
		b.st.close()
	}
	if b.work != "" {
		os.RemoveAll(b.work)
	}
}

func (b *containerBuilder) inputs(ctx context.Context) (string, error) {
	spec, err := LoadContainer(b.o.Dir)
	if err != nil {
		return "", err
	}
	b.spec = spec
	if b.source, err = findSource(b.o.Source, b.o.Dir); err != nil {
		return "", err
	}
	epoch, err := sourceEpoch(ctx, b.source, b.o.Epoch)
	if err != nil {
		return "", err
	}
	b.epoch = time.Unix(epoch, 0).UTC()
	b.res = ContainerResult{Name: spec.Name, Version: b.o.Version, Epoch: epoch}
	if b.res.Version == "" {
		b.res.Version = version.Version
	}
	b.out = b.o.Out
	if b.out == "" {
		b.out = filepath.Join(b.source, "build", "containers", spec.Name)
	}
	if err := os.MkdirAll(b.out, 0o755); err != nil {
		return "", fmt.Errorf("output folder: %w", err)
	}
	if b.work, err = os.MkdirTemp(b.out, ".work-"); err != nil {
		return "", fmt.Errorf("work folder: %w", err)
	}
	return fmt.Sprintf("%s %s, epoch %s", spec.Name, b.res.Version, strconv.FormatInt(epoch, 10)), nil
}

func (b *containerBuilder) packages(ctx context.Context) (string, error) {
	if len(b.spec.Packages.Include) == 0 {
		return "none", nil
	}
	cacheDir := b.o.CacheDir
	if cacheDir == "" {
		var err error
		if cacheDir, err = DefaultCacheDir(); err != nil {
			return "", err
		}
	}
	cache, release, err := openCache(ctx, cacheDir, func() { b.p.logf("waiting for another build to release the cache %s", cacheDir) })
	if err != nil {
		return "", err
	}
	b.release = release
	goarch, _ := debArch(b.spec.Arch)
	b.src = &packageSource{cache: cache, arch: goarch, dist: b.spec.Distribution}
	lockPath := b.o.LockFile
	if lockPath == "" {
		lockPath = filepath.Join(b.spec.Dir, LockFile)
	}
	existing, err := ReadLock(lockPath)
	if err != nil && !b.o.UpdateLock {
		return "", err
	}
	rr, err := b.src.resolve(ctx, b.spec, existing, lockPath, b.o.UpdateLock, b.o.Locked)
	if err != nil {
		return "", err
	}
	b.lock = rr.lock
	if rr.resolved {
		if err := writeLock(lockPath, b.spec.Name, b.lock); err != nil {
			return "", err
		}
	}
	files, downloaded, err := b.src.fetch(ctx, b.lock, b.work, nil)
	if err != nil {
		return "", err
	}
	b.files = files
	b.release()
	b.release = nil
	b.res.Packages = len(b.lock.Packages)
	how := "from " + filepath.Base(lockPath)
	if rr.resolved {
		how = "resolved with apt (" + rr.why + "); wrote " + filepath.Base(lockPath)
	}
	return fmt.Sprintf("%d packages %s, %d downloaded", len(b.lock.Packages), how, downloaded), nil
}

func (b *containerBuilder) extract(ctx context.Context) (string, error) {
	st, detail, err := extractAll(ctx, filepath.Join(b.work, "root"), b.files)
	b.st = st
	return detail, err
}
