// Package initrd builds Gantry's initramfs: a reproducible newc cpio archive
// (optionally gzip-compressed) holding the static gantry-init program as
// /init, the kernel modules it needs to reach the root disk (with their
// dependencies, resolved from each module's .modinfo section because Debian's
// kernel package ships no modules.dep), and the list of those modules in
// load order.
//
// What /init does at boot is in package initrd/bootinit and
// docs/boot.md.
package initrd

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Paths inside the initramfs.
const (
	// InitPath is the program the kernel runs.
	InitPath = "/init"
	// ModuleDir holds the module files, flat: /lib/modules/<name>.ko.
	ModuleDir = "/lib/modules"
	// ModuleListPath lists the modules to load, one absolute path per line
	// in load order; blank lines and lines starting with # are ignored.
	ModuleListPath = "/etc/gantry-initrd/modules"
)

// Options are the inputs of Build.
type Options struct {
	// Init is the path of the static gantry-init binary, installed as
	// /init.
	Init string
	// ModulesDir is <root>/lib/modules/<kernel version> of the kernel
	// package, extracted. It may be empty when Modules is.
	ModulesDir string
	// Modules are the modules /init loads, by name ("virtio_blk",
	// "dm-verity"); their dependencies are added and ordered
	// automatically. Names built into the kernel are skipped.
	Modules []string
	// Out is the path of the archive to write (replaced atomically).
	Out string
	// Epoch is every entry's modification time (the zero Time means the
	// Unix epoch), so that rebuilds are byte-identical.
	Epoch time.Time
	// Gzip compresses the archive with gzip (fixed header: no name, mtime
	// 0), which every Debian kernel can unpack (CONFIG_RD_GZIP).
	Gzip bool
}

// Build writes the initramfs described by opts.
func Build(ctx context.Context, opts Options) error {
	if err := build(ctx, opts); err != nil {
		return fmt.Errorf("build initramfs %s: %w", opts.Out, err)
	}
	return nil
}

func build(ctx context.Context, opts Options) error {
	if opts.Out == "" || opts.Init == "" {
		return fmt.Errorf("both Init and Out are required")
	}
	initBin, err := os.ReadFile(opts.Init)
	if err != nil {
		return fmt.Errorf("init program: %w", err)
	}
	if !bytes.HasPrefix(initBin, []byte("\x7fELF")) {
		return fmt.Errorf("init program %s is not an ELF executable", opts.Init)
	}
	var mods []Module
	if len(opts.Modules) > 0 {
		if opts.ModulesDir == "" {
			return fmt.Errorf("modules requested but no ModulesDir")
		}
		if mods, err = ResolveModules(opts.ModulesDir, opts.Modules); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	a := newArchive()
	add := func(e entry) {
		if err == nil {
			err = a.add(e)
		}
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "sysroot", "etc", "lib/modules"} {
		add(entry{Name: d, Mode: modeDir | 0o755})
	}
	// The kernel opens /dev/console for /init's stdio before /init can
	// mount devtmpfs, so the node must be in the archive.
	add(entry{Name: "dev/console", Mode: modeCharDev | 0o600, RdevMajor: 5, RdevMinor: 1})
	add(entry{Name: strings.TrimPrefix(InitPath, "/"), Mode: modeFile | 0o755, Data: initBin})
	var list strings.Builder
	list.WriteString("# Kernel modules gantry-init loads, in order (written by initrd.Build).\n")
	for _, m := range mods {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, rerr := os.ReadFile(m.Path)
		if rerr != nil {
			return fmt.Errorf("module %s: %w", m.Name, rerr)
		}
		p := path.Join(ModuleDir, m.Name+".ko")
		add(entry{Name: p, Mode: modeFile | 0o644, Data: data})
		list.WriteString(p + "\n")
	}
	add(entry{Name: ModuleListPath, Mode: modeFile | 0o644, Data: []byte(list.String())})
	if err != nil {
		return err
	}

	var mtime int64
	if !opts.Epoch.IsZero() {
		mtime = opts.Epoch.Unix()
	}
	tmp, err := os.CreateTemp(filepath.Dir(opts.Out), "."+filepath.Base(opts.Out)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	var w io.Writer = bw
	var zw *gzip.Writer
	if opts.Gzip {
		// The zero Header has no name and mtime 0, and OS 255 (unknown):
		// the compressed bytes depend only on the archive.
		if zw, err = gzip.NewWriterLevel(bw, gzip.BestCompression); err != nil {
			return err
		}
		w = zw
	}
	if err := a.writeTo(w, mtime); err != nil {
		return err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), opts.Out)
}

// ParseModuleList parses the module list file (ModuleListPath): one path
// per line, blank lines and # comments ignored.
func ParseModuleList(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read module list: %w", err)
	}
	return out, nil
}
