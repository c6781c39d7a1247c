package imagebuild

import (
	"bufio"
	"compress/gzip"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// kernelInfo is what the kernel step found and kept.
type kernelInfo struct {
	// Release is the kernel release (6.1.0-56-cloud-amd64).
	Release string
	// Vmlinuz is the kernel image, moved out of the root.
	Vmlinuz string
	// ModulesDir is the tree path of /usr/lib/modules/<release>.
	ModulesDir string
	// Kept and Total count the modules kept in the root and shipped.
	Kept, Total int
}

// takeKernel finds the kernel the packages installed in /boot, moves it to
// dst and empties /boot (the BOOT partition's mount point).
func takeKernel(s *stage, dst string) (*kernelInfo, error) {
	matches, err := fs.Glob(s.root.FS(), "boot/vmlinuz-*")
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if len(matches) != 1 {
		return nil, fmt.Errorf("kernel: want one /boot/vmlinuz-* from the kernel package, found %d", len(matches))
	}
	k := &kernelInfo{Release: strings.TrimPrefix(path.Base(matches[0]), "vmlinuz-"), Vmlinuz: dst}
	if err := copyFile(s.abs(matches[0]), dst, 0o644); err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if err := s.root.RemoveAll("boot"); err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if err := s.mkdirAll("boot", 0o755); err != nil {
		return nil, err
	}
	k.ModulesDir = "usr/lib/modules/" + k.Release
	return k, nil
}

// module is one .ko of the kernel.
type module struct {
	rel  string // below the modules folder: kernel/fs/erofs/erofs.ko
	deps []string
}

// modName normalizes a module name as modprobe does (- and _ are equal).
func modName(s string) string {
	return strings.ReplaceAll(strings.TrimSuffix(strings.TrimSuffix(path.Base(s), ".xz"), ".ko"), "-", "_")
}

// moduleDecompressors are the compressions Debian's kernels ship modules
// with (trixie's are xz: CONFIG_MODULE_COMPRESS_ALL).
var moduleDecompressors = map[string]func(io.Reader) (io.Reader, error){
	".xz": func(r io.Reader) (io.Reader, error) { return xz.NewReader(r) },
	".zst": func(r io.Reader) (io.Reader, error) {
		d, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	},
	".gz": func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
}

// decompressModules replaces each compressed module (name.ko.xz, .zst,
// .gz) below modDir/kernel by the plain name.ko. The root's erofs compresses
// them anyway, gantry-init's finit_module and the module index readers
// take plain ELF files, and the image does not depend on the kernel's
// in-kernel decompression. Two workers share the work.
func decompressModules(s *stage, modDir string) error {
	var files []string
	err := fs.WalkDir(s.root.FS(), modDir+"/kernel", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == modDir+"/kernel" {
				return fs.SkipAll
			}
			return err
		}
		if !d.IsDir() && moduleDecompressors[path.Ext(p)] != nil && strings.HasSuffix(strings.TrimSuffix(p, path.Ext(p)), ".ko") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("kernel modules: %w", err)
	}
	work := make(chan string)
	errs := make(chan error, len(files))
	var wg sync.WaitGroup
	for range max(2, runtime.NumCPU()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				errs <- decompressModule(s, p)
			}
		}()
	}
	for _, p := range files {
		work <- p
	}
	close(work)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	if err := errors.Join(all...); err != nil {
		return fmt.Errorf("kernel modules: %w", err)
	}
	return nil
}

// decompressModule writes p without its compression suffix and removes p.
func decompressModule(s *stage, p string) error {
	f, err := s.root.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	r, err := moduleDecompressors[path.Ext(p)](bufio.NewReader(f))
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if err := s.writeFrom(strings.TrimSuffix(p, path.Ext(p)), r, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return s.root.Remove(p)
}

// readModules indexes the kernel's modules by name with their dependencies
// (the depends= field of each module's .modinfo section).
func readModules(s *stage, modDir string) (map[string]*module, error) {
	mods := map[string]*module{}
	err := fs.WalkDir(s.root.FS(), modDir+"/kernel", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == modDir+"/kernel" {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".ko") {
			return nil
		}
		info, err := modinfo(s.abs(p))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		name := modName(p)
		if n := info["name"]; n != "" {
			name = modName(n)
		}
		m := &module{rel: strings.TrimPrefix(p, modDir+"/")}
		for _, dep := range strings.Split(info["depends"], ",") {
			if dep != "" {
				m.deps = append(m.deps, modName(dep))
			}
		}
		mods[name] = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	return mods, nil
}

// modinfo reads the key=value pairs of a module's .modinfo section.
func modinfo(file string) (map[string]string, error) {
	f, err := elf.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, kv := range strings.Split(string(data), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			if _, dup := out[k]; !dup {
				out[k] = v
			}
		}
	}
	return out, nil
}

// selectModules keeps in the root the modules the variant names (module
// names, folders below kernel/, or "*"), the initramfs modules and all their
// dependencies, and removes the rest. A name that is built into the kernel
// (modules.builtin) is accepted and needs nothing.
func selectModules(s *stage, k *kernelInfo, keep, initramfs []string) error {
	if err := decompressModules(s, k.ModulesDir); err != nil {
		return err
	}
	mods, err := readModules(s, k.ModulesDir)
	if err != nil {
		return err
	}
	k.Total = len(mods)
	builtin := map[string]bool{}
	if data, err := s.root.ReadFile(k.ModulesDir + "/modules.builtin"); err == nil {
		for _, l := range strings.Fields(string(data)) {
			builtin[modName(l)] = true
		}
	}
	kept := map[string]bool{}
	var add func(name, why string) error
	add = func(name, why string) error {
		if kept[name] {
			return nil
		}
		m, ok := mods[name]
		if !ok {
			if builtin[name] {
				return nil
			}
			return fmt.Errorf("kernel modules: %s (%s) is not a module of kernel %s", name, why, k.Release)
		}
		kept[name] = true
		for _, d := range m.deps {
			if err := add(d, "needed by "+name); err != nil {
				return err
			}
		}
		return nil
	}
	all := false
	for _, spec := range keep {
		switch {
		case spec == "*":
			all = true
		case strings.Contains(spec, "/"):
			prefix := "kernel/" + strings.Trim(spec, "/") + "/"
			n := 0
			for name, m := range mods {
				if strings.HasPrefix(m.rel, prefix) {
					n++
					if err := add(name, "under "+spec); err != nil {
						return err
					}
				}
			}
			if n == 0 {
				return fmt.Errorf("kernel modules: no module under kernel/%s", strings.Trim(spec, "/"))
			}
		default:
			if err := add(modName(spec), "kernel.modules"); err != nil {
				return err
			}
		}
	}
	for _, spec := range initramfs {
		if err := add(modName(spec), "kernel.initramfs-modules"); err != nil {
			return err
		}
	}
	if all {
		k.Kept = len(mods)
		return nil
	}
	names := make([]string, 0, len(mods))
	for n := range mods {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !kept[n] {
			if err := s.root.Remove(k.ModulesDir + "/" + mods[n].rel); err != nil {
				return fmt.Errorf("kernel modules: %w", err)
			}
		}
	}
	k.Kept = len(kept)
	return removeEmptyDirs(s, k.ModulesDir+"/kernel")
}

// removeEmptyDirs removes the folders under rel that hold no file.
func removeEmptyDirs(s *stage, rel string) error {
	var dirs []string
	err := fs.WalkDir(s.root.FS(), rel, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kernel modules: %w", err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if ents, err := fs.ReadDir(s.root.FS(), dirs[i]); err == nil && len(ents) == 0 {
			if err := s.root.Remove(dirs[i]); err != nil {
				return fmt.Errorf("kernel modules: %w", err)
			}
		}
	}
	return nil
}

// depmod writes the module indexes that maintainer scripts would have
// (modules.dep.bin and friends; modprobe and systemd need them). It runs
// the image's own depmod through the image's dynamic loader, so the indexes
// depend only on the locked packages; without kmod in the image it falls
// back to the host's depmod.
func depmod(ctx context.Context, s *stage, k *kernelInfo) error {
	if k.Kept == 0 {
		return nil
	}
	imageErr := errors.New("the image has no kmod")
	if kmod, err := s.resolve("usr/bin/kmod"); err == nil && s.exists(kmod) {
		c, err := imageProgram(s, kmod, "depmod", "-b", s.dir, k.Release)
		if err == nil {
			_, err = c.run(ctx)
		}
		if err == nil {
			return nil
		}
		imageErr = err
	}
	if _, err := exec.LookPath("depmod"); err != nil {
		return fmt.Errorf("depmod: the image's kmod cannot run here (%v) and the host has no depmod (apt-get install kmod)", imageErr)
	}
	if _, err := (command{name: "depmod", args: []string{"-b", s.dir, k.Release}}).run(ctx); err != nil {
		return fmt.Errorf("depmod (host; the image's failed: %v): %w", imageErr, err)
	}
	return nil
}

// imageProgram runs a dynamically linked program of the image on the host
// with the image's loader and libraries, under argv0.
func imageProgram(s *stage, prog, argv0 string, args ...string) (command, error) {
	f, err := elf.Open(s.abs(prog))
	if err != nil {
		return command{}, err
	}
	defer f.Close()
	var interp string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return command{}, err
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if interp == "" {
		return command{name: s.abs(prog), args: args}, nil
	}
	ld, err := s.resolve(interp)
	if err != nil || !s.exists(ld) {
		return command{}, fmt.Errorf("no loader %s in the image", interp)
	}
	libs := []string{s.abs(path.Dir(ld)), s.abs("usr/lib")}
	if _, err := os.Stat(s.abs(ld)); err != nil {
		return command{}, err
	}
	return command{
		name: s.abs(ld),
		args: append([]string{"--library-path", strings.Join(libs, ":"), "--argv0", argv0, s.abs(prog)}, args...),
	}, nil
}
