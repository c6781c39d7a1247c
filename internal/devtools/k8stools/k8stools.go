// Package k8stools builds the Kubernetes node's and control plane's
// programs from the tools modules (tools/k8s: k8s.io/kubernetes and etcd;
// tools/runtime: containerd 2 and the CNI plugins, all from the Go module
// proxy) and keeps them in a cache outside the repository, one folder per
// module keyed by its go.mod and go.sum, the Go toolchain and this
// package's build recipe: kubelet, containerd, its runc shim and the CNI
// plugins, which the Kubernetes variants ship, and etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kubectl, which the tests and
// the host's control plane run. The binaries are static and reproducible
// (trimmed paths, no VCS stamp or build ID, the release's version stamped
// in as the projects' own builds do).
package k8stools

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gantry-os/gantry/internal/procgroup"
)

// ModuleDir is the Kubernetes tools module's folder in the source tree.
const ModuleDir = "tools/k8s"

// recipe changes whenever the way the binaries are built changes, so that
// cached builds of an older recipe are not reused.
const recipe = "1"

// Binary is one program a tools module builds.
type Binary struct {
	Name    string // file name
	Package string // Go package
	// Stamp names the version stamp its linker flags get: "kubernetes",
	// "containerd", "cni", or "" for none.
	Stamp string
}

// Module is a tools module and what it builds.
type Module struct {
	// Dir is the module's folder in the source tree.
	Dir string
	// Requires are the modules whose versions the build reports (and that
	// go.mod must require).
	Requires map[string]string // field name in Build → module path
	// Binaries in build order.
	Binaries []Binary
}

// Modules are the tools modules. The Kubernetes one builds etcd first (it
// compiles the standard library and shared packages quickly) and kubectl
// after the apiserver, with which it shares most packages.
var Modules = []Module{
	{
		Dir:      ModuleDir,
		Requires: map[string]string{"kubernetes": "k8s.io/kubernetes", "etcd": "go.etcd.io/etcd/server/v3"},
		Binaries: []Binary{
			{"etcd", "go.etcd.io/etcd/server/v3", ""},
			{"kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", "kubernetes"},
			{"kubectl", "k8s.io/kubernetes/cmd/kubectl", "kubernetes"},
			{"kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager", "kubernetes"},
			{"kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler", "kubernetes"},
			{"kubelet", "k8s.io/kubernetes/cmd/kubelet", "kubernetes"},
		},
	},
	{
		Dir:      "tools/runtime",
		Requires: map[string]string{"containerd": "github.com/containerd/containerd/v2", "cni-plugins": "github.com/containernetworking/plugins"},
		Binaries: []Binary{
			{"containerd", "github.com/containerd/containerd/v2/cmd/containerd", "containerd"},
			{"containerd-shim-runc-v2", "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2", "containerd"},
			{"bridge", "github.com/containernetworking/plugins/plugins/main/bridge", "cni"},
			{"host-local", "github.com/containernetworking/plugins/plugins/ipam/host-local", "cni"},
			{"loopback", "github.com/containernetworking/plugins/plugins/main/loopback", "cni"},
			{"portmap", "github.com/containernetworking/plugins/plugins/meta/portmap", "cni"},
		},
	},
}

// Binaries are every module's programs.
func Binaries() []Binary {
	var bs []Binary
	for _, m := range Modules {
		bs = append(bs, m.Binaries...)
	}
	return bs
}

// Options configure Ensure.
type Options struct {
	// Source is the Gantry source tree (holding tools/).
	Source string
	// CacheDir holds the builds, one folder per module and key (default:
	// <user cache dir>/gantry/k8s).
	CacheDir string
	// Go is the go command (default: go on PATH).
	Go string
	// Log gets progress lines (nil: none).
	Log io.Writer
}

// Build is one module's finished build, a folder with its binaries and the
// manifest tools.json.
type Build struct {
	Dir string `json:"-"`
	// Key is the cache key the build is filed under.
	Key string `json:"key"`
	// The versions built (those the module reports).
	Kubernetes string `json:"kubernetes,omitempty"`
	Etcd       string `json:"etcd,omitempty"`
	Containerd string `json:"containerd,omitempty"`
	CNIPlugins string `json:"cni-plugins,omitempty"`
	GoVersion  string `json:"go"`
	// SHA256 is each binary's digest.
	SHA256 map[string]string `json:"sha256"`
	// Seconds is how long the build took.
	Seconds float64 `json:"seconds"`
}

func (b *Build) setVersion(field, v string) {
	switch field {
	case "kubernetes":
		b.Kubernetes = v
	case "etcd":
		b.Etcd = v
	case "containerd":
		b.Containerd = v
	case "cni-plugins":
		b.CNIPlugins = v
	}
}

// Tools are every module's builds.
type Tools struct {
	Builds []*Build
	// The versions built.
	Kubernetes, Etcd, Containerd, CNIPlugins string
	paths                                    map[string]string
}

// Path is a binary's path ("" for none).
func (t *Tools) Path(name string) string { return t.paths[name] }

// SHA256 is a binary's digest ("" for none).
func (t *Tools) SHA256(name string) string {
	for _, b := range t.Builds {
		if s, ok := b.SHA256[name]; ok {
			return s
		}
	}
	return ""
}

// manifestName is the file that marks a finished build.
const manifestName = "tools.json"

// DefaultCacheDir is <user cache dir>/gantry/k8s.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("default cache folder: %w (pass --cache-dir)", err)
	}
	return filepath.Join(d, "gantry", "k8s"), nil
}

// Ensure returns the cached builds for the tools modules' current inputs,
// building those that are missing first. One build runs at a time per
// cache folder: a second caller waits for the first and then reuses its
// builds.
func Ensure(ctx context.Context, o Options) (*Tools, error) {
	if o.Go == "" {
		o.Go = "go"
	}
	if o.CacheDir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		o.CacheDir = d
	}
	goVersion, err := run(ctx, o.Source, nil, o.Go, "env", "GOVERSION")
	if err != nil {
		return nil, fmt.Errorf("k8s tools: %w", err)
	}
	goVersion = strings.TrimSpace(goVersion)
	t := &Tools{paths: map[string]string{}}
	var unlock func()
	defer func() {
		if unlock != nil {
			unlock()
		}
	}()
	for _, m := range Modules {
		dir := filepath.Join(o.Source, m.Dir)
		key, versions, err := m.key(dir, goVersion)
		if err != nil {
			return nil, err
		}
		out := filepath.Join(o.CacheDir, key)
		b, err := load(out, m)
		if err != nil {
			if unlock == nil {
				if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
					return nil, fmt.Errorf("k8s tools cache: %w", err)
				}
				if unlock, err = lock(ctx, filepath.Join(o.CacheDir, ".lock"), o.Log); err != nil {
					return nil, err
				}
			}
			if b, err = load(out, m); err != nil { // not built by a caller we waited for
				if b, err = build(ctx, o, m, dir, out, key, goVersion, versions); err != nil {
					return nil, err
				}
			}
		}
		t.Builds = append(t.Builds, b)
		for _, bin := range m.Binaries {
			t.paths[bin.Name] = filepath.Join(b.Dir, bin.Name)
		}
		t.Kubernetes, t.Etcd = first(t.Kubernetes, b.Kubernetes), first(t.Etcd, b.Etcd)
		t.Containerd, t.CNIPlugins = first(t.Containerd, b.Containerd), first(t.CNIPlugins, b.CNIPlugins)
	}
	return t, nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// key is the cache key of the module's folder mod for a toolchain: a hash
// of go.mod, go.sum, the toolchain's version and the recipe. It also
// returns the versions go.mod requires.
func (m Module) key(mod, goVersion string) (string, map[string]string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "recipe %s\ngo %s\n", recipe, goVersion)
	var gomod []byte
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(mod, f))
		if err != nil {
			return "", nil, fmt.Errorf("tools module: %w", err)
		}
		if f == "go.mod" {
			gomod = b
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	versions := requiredVersions(gomod)
	for _, path := range m.Requires {
		if versions[path] == "" {
			return "", nil, fmt.Errorf("tools module %s: go.mod does not require %s", mod, path)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], versions, nil
}

// requiredVersions reads the require lines of a go.mod.
func requiredVersions(gomod []byte) map[string]string {
	v := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	inRequire := false
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "require (":
			inRequire = true
			continue
		case inRequire && l == ")":
			inRequire = false
			continue
		case strings.HasPrefix(l, "require "):
			l = strings.TrimPrefix(l, "require ")
		case !inRequire:
			continue
		}
		if f := strings.Fields(l); len(f) >= 2 {
			v[f[0]] = f[1]
		}
	}
	return v
}

// LDFlags are the linker flags for a Kubernetes command of version v
// (v1.37.1): stripped, no build ID, and the version stamped where
// component-base and client-go read it, as Kubernetes' release build does.
// The build date is the epoch, for reproducible bytes.
func LDFlags(v string) (string, error) {
	var major, minor, patch int
	if _, err := fmt.Sscanf(v, "v%d.%d.%d", &major, &minor, &patch); err != nil {
		return "", fmt.Errorf("kubernetes version %q: %w", v, err)
	}
	flags := []string{"-s", "-w", "-buildid="}
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		flags = append(flags,
			fmt.Sprintf("-X %s.gitVersion=%s", pkg, v),
			fmt.Sprintf("-X %s.gitMajor=%d", pkg, major),
			fmt.Sprintf("-X %s.gitMinor=%d", pkg, minor),
			fmt.Sprintf("-X %s.gitTreeState=clean", pkg),
			fmt.Sprintf("-X %s.buildDate=1970-01-01T00:00:00Z", pkg))
	}
	return strings.Join(flags, " "), nil
}

// containerdLDFlags stamp containerd's version (v2.4.2) as its release
// build does.
func containerdLDFlags(v string) string {
	return "-s -w -buildid= -X github.com/containerd/containerd/v2/version.Version=" + v +
		" -X github.com/containerd/containerd/v2/version.Revision=gantry" +
		" -X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2"
}

func build(ctx context.Context, o Options, m Module, mod, dir, key, goVersion string, versions map[string]string) (*Build, error) {
	start := time.Now()
	tmp, err := os.MkdirTemp(o.CacheDir, ".build-")
	if err != nil {
		return nil, fmt.Errorf("k8s tools: %w", err)
	}
	defer os.RemoveAll(tmp)
	env := []string{"CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "GOTOOLCHAIN=local", "GOEXPERIMENT=", "GOAMD64=v1"}
	b := &Build{Key: key, GoVersion: goVersion, SHA256: map[string]string{}}
	for field, path := range m.Requires {
		b.setVersion(field, versions[path])
	}
	for _, bin := range m.Binaries {
		t0 := time.Now()
		flags := "-s -w -buildid="
		switch bin.Stamp {
		case "kubernetes":
			if flags, err = LDFlags(versions["k8s.io/kubernetes"]); err != nil {
				return nil, err
			}
		case "containerd":
			flags = containerdLDFlags(versions["github.com/containerd/containerd/v2"])
		case "cni":
			flags += " -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=" +
				versions["github.com/containernetworking/plugins"]
		}
		if o.Log != nil {
			fmt.Fprintf(o.Log, "k8s tools: building %s (%s) ...\n", bin.Name, bin.Package)
		}
		out := filepath.Join(tmp, bin.Name)
		args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=" + flags}
		if bin.Stamp == "containerd" {
			// No btrfs snapshotter (it needs cgo), as containerd's static
			// release builds.
			args = append(args, "-tags=no_btrfs")
		}
		if _, err := run(ctx, mod, env, o.Go, append(args, "-o", out, bin.Package)...); err != nil {
			return nil, fmt.Errorf("k8s tools: build %s: %w", bin.Name, err)
		}
		sum, err := fileSHA256(out)
		if err != nil {
			return nil, err
		}
		b.SHA256[bin.Name] = sum
		if o.Log != nil {
			fmt.Fprintf(o.Log, "k8s tools: built %s in %v\n", bin.Name, time.Since(t0).Round(time.Second))
		}
	}
	b.Seconds = time.Since(start).Seconds()
	manifest, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, manifestName), append(manifest, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("k8s tools: %w", err)
	}
	os.RemoveAll(dir) // an unfinished folder of an earlier build
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("k8s tools: %w", err)
	}
	b.Dir = dir
	return b, nil
}

// load reads a finished build of m and checks that its binaries are there.
func load(dir string, m Module) (*Build, error) {
	data, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, err
	}
	var b Build
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, manifestName), err)
	}
	for _, bin := range m.Binaries {
		if _, err := os.Stat(filepath.Join(dir, bin.Name)); err != nil {
			return nil, err
		}
	}
	b.Dir = dir
	return &b, nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// lock takes an exclusive flock on path, waiting (and saying so) while
// another build holds it.
func lock(ctx context.Context, path string, log io.Writer) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("k8s tools cache lock: %w", err)
	}
	said := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("k8s tools cache lock: %w", err)
		}
		if !said && log != nil {
			fmt.Fprintf(log, "k8s tools: waiting for another build (%s)\n", path)
			said = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// run runs a command in dir and returns its standard output; the error
// carries the end of its standard error.
func run(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	procgroup.Configure(cmd) // a cancelled go build takes its compilers with it
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := stderr.String()
		if len(msg) > 4000 {
			msg = "..." + msg[len(msg)-4000:]
		}
		return "", fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}
