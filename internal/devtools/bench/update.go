package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"github.com/gantry-os/gantry/pkg/version"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/update/manifest"
	"github.com/gantry-os/gantry/internal/update/tufrepo"
)

// UpdateOptions tune the update benchmark.
type UpdateOptions struct {
	Dir      string
	ImageMiB int
	// Self is this program, re-run as the updog child (see ChildUpdog).
	Self string
}

// UpdateResult compares writing an update with the floor.
type UpdateResult struct {
	ImageBytes   int64
	TargetBytes  int64
	Updog        time.Duration
	UpdogMaxRSS  int64 // bytes
	FloorHash    time.Duration
	FloorWrite   time.Duration
	ThroughputOK bool
}

// Ratio is the updog throughput over the floor's (floor time / updog time).
func (r UpdateResult) Ratio() float64 {
	return float64(r.FloorHash+r.FloorWrite) / float64(r.Updog)
}

// RunUpdate publishes an image of opts.ImageMiB random bytes in a real
// repository served on 127.0.0.1, then times updog (a child process, for
// its peak RSS) writing it into the inactive ROOT of a GPT image file
// against the floor: `sha256sum` of the target plus a plain, synced write
// of the same image bytes.
func RunUpdate(ctx context.Context, opts UpdateOptions) (UpdateResult, error) {
	var res UpdateResult
	dir := opts.Dir
	img := filepath.Join(dir, "root.img")
	if err := randomFile(img, int64(opts.ImageMiB)<<20); err != nil {
		return res, err
	}
	res.ImageBytes = int64(opts.ImageMiB) << 20
	small := filepath.Join(dir, "small.img")
	if err := randomFile(small, 64<<10); err != nil {
		return res, err
	}
	kp, err := tufrepo.GenerateKey(filepath.Join(dir, "key"))
	if err != nil {
		return res, err
	}
	key, err := tufrepo.LoadKey(kp.Private)
	if err != nil {
		return res, err
	}
	one := tufrepo.RoleKeys{Keys: []*tufrepo.Key{key}}
	repo, err := tufrepo.Create(ctx, filepath.Join(dir, "repo"), tufrepo.CreateOptions{Root: one, Targets: one, Snapshot: one, Timestamp: one})
	if err != nil {
		return res, err
	}
	v := version.Semver{Major: 1, Minor: 1}
	if _, err := repo.AddRelease(ctx, tufrepo.Release{Variant: "metal-dev", Arch: "x86_64", Version: v, Boot: small, Root: img, Hash: small,
		Transitions: map[manifest.Transition][]string{{From: version.Semver{Major: 1}, To: v}: {}}}); err != nil {
		return res, err
	}
	target := ""
	entries, _ := os.ReadDir(repo.TargetsDir())
	for _, e := range entries {
		if fi, _ := e.Info(); fi.Size() > res.TargetBytes {
			res.TargetBytes, target = fi.Size(), filepath.Join(repo.TargetsDir(), e.Name())
		}
	}
	srv := httptest.NewServer(tufrepo.Handler(repo.Dir()))
	defer srv.Close()
	gib := (opts.ImageMiB*1024/460)/1024 + 1 // ROOT is 460 MiB per GiB of OS image
	layout, err := disklayout.Plan(disklayout.Options{OSImageGiB: gib})
	if err != nil {
		return res, err
	}
	disk := filepath.Join(dir, "disk.img")
	if err := disklayout.WriteFile(disk, layout.OS); err != nil {
		return res, err
	}
	rel := filepath.Join(dir, "os-release")
	os.WriteFile(rel, []byte("VARIANT_ID=metal-dev\nVERSION_ID=1.0.0\n"), 0o644)
	root, _ := os.ReadFile(repo.RootPath())
	os.WriteFile(filepath.Join(dir, "root.json"), root, 0o644)

	dropCaches()
	cmd := exec.CommandContext(ctx, opts.Self, "-child-updog", "update-image", "--no-api", "--metadata-base-url", srv.URL+"/metadata/",
		"--targets-base-url", srv.URL+"/targets/", "--version-lock", "latest", "--root-json", filepath.Join(dir, "root.json"),
		"--metadata-directory", filepath.Join(dir, "md"), "--migration-directory", filepath.Join(dir, "mig"), "--os-release", rel,
		"--disk", disk, "--active", "A", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return res, fmt.Errorf("updog: %w", err)
	}
	res.Updog = time.Since(start)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.UpdogMaxRSS = ru.Maxrss * 1024
	}

	dropCaches()
	start = time.Now()
	if out, err := exec.CommandContext(ctx, "sh", "-c", "cat \"$1\" | sha256sum >/dev/null", "sh", target).CombinedOutput(); err != nil {
		return res, fmt.Errorf("floor sha256sum: %v: %s", err, out)
	}
	res.FloorHash = time.Since(start)
	dropCaches()
	start = time.Now()
	if err := plainWrite(img, filepath.Join(dir, "floor.out")); err != nil {
		return res, err
	}
	res.FloorWrite = time.Since(start)
	res.ThroughputOK = res.Ratio() >= 0.8
	return res, nil
}

func randomFile(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyN(f, rand.Reader, n)
	return err
}

func plainWrite(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := io.CopyBuffer(out, in, make([]byte, 1<<20)); err != nil {
		return err
	}
	return out.Sync()
}

// dropCaches asks the kernel to drop clean page cache (root only), so each
// measurement reads from the disk alike; without root it does nothing.
func dropCaches() {
	exec.Command("sync").Run()
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0o200)
}

// PrintUpdate writes the result with the goals.
func PrintUpdate(w io.Writer, r UpdateResult) {
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	fmt.Fprintf(w, "image %.0f MiB, target %.0f MiB (zstd)\n", mib(r.ImageBytes), mib(r.TargetBytes))
	fmt.Fprintf(w, "updog update-image into the inactive ROOT: %s (%.0f MiB/s), peak RSS %.1f MiB (goal <= 64 MiB)\n",
		r.Updog.Round(time.Millisecond), mib(r.ImageBytes)/r.Updog.Seconds(), mib(r.UpdogMaxRSS))
	fmt.Fprintf(w, "floor: cat target | sha256sum %s + plain synced write %s = %s\n",
		r.FloorHash.Round(time.Millisecond), r.FloorWrite.Round(time.Millisecond), (r.FloorHash + r.FloorWrite).Round(time.Millisecond))
	fmt.Fprintf(w, "updog throughput / floor throughput = %.2fx (goal >= 0.8x)\n", r.Ratio())
}
