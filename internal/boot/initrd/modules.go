package initrd

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Module is a kernel module file chosen for the initramfs.
type Module struct {
	// Name is the module's name with "-" folded to "_" (dm_verity).
	Name string
	// Path is the .ko file under the modules directory.
	Path string
	// Depends are the modules it needs loaded first: its .modinfo
	// "depends=" list and the "pre:" modules of its "softdep=" that exist
	// as files.
	Depends []string
}

// ModuleName folds a module or file name to the kernel's canonical module
// name: no directory, no .ko suffix (or compressed suffix), "-" as "_".
func ModuleName(s string) string {
	s = filepath.Base(s)
	for _, suf := range []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"} {
		if strings.HasSuffix(s, suf) {
			s = strings.TrimSuffix(s, suf)
			break
		}
	}
	return strings.ReplaceAll(s, "-", "_")
}

// moduleIndex is the modules of one kernel's modules directory.
type moduleIndex struct {
	dir        string
	files      map[string]string // name -> .ko path
	compressed map[string]string // name -> compressed file, which we cannot load
	builtin    map[string]bool   // from modules.builtin
}

func indexModules(dir string) (*moduleIndex, error) {
	idx := &moduleIndex{dir: dir, files: map[string]string{}, compressed: map[string]string{}, builtin: map[string]bool{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		switch base := d.Name(); {
		case strings.HasSuffix(base, ".ko"):
			n := ModuleName(base)
			if old, dup := idx.files[n]; dup && old < p {
				return nil // keep the first in lexical order, deterministically
			}
			idx.files[n] = p
		case strings.HasSuffix(base, ".ko.xz"), strings.HasSuffix(base, ".ko.zst"), strings.HasSuffix(base, ".ko.gz"):
			idx.compressed[ModuleName(base)] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index kernel modules in %s: %w", dir, err)
	}
	if len(idx.files) == 0 && len(idx.compressed) == 0 {
		return nil, fmt.Errorf("index kernel modules: no modules in %s", dir)
	}
	f, err := os.Open(filepath.Join(dir, "modules.builtin"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("index kernel modules: %w", err)
	default:
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				idx.builtin[ModuleName(l)] = true
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("index kernel modules: reading modules.builtin: %w", err)
		}
	}
	return idx, nil
}

// modinfo returns the key=value pairs of a module's .modinfo ELF section.
// A key can repeat (alias=, softdep=), so values are lists.
func modinfo(path string) (map[string][]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("read module %s: no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read module %s: .modinfo: %w", path, err)
	}
	info := map[string][]string{}
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if ok {
			info[k] = append(info[k], v)
		}
	}
	return info, nil
}

// ModuleDepends returns the modules a .ko file needs loaded first (its
// .modinfo depends= list), by their kernel names.
func ModuleDepends(path string) ([]string, error) {
	hard, _, err := depends(path)
	return hard, err
}

// depends returns a module file's hard dependencies and its soft "pre:"
// ones.
func depends(path string) (hard, softPre []string, err error) {
	info, err := modinfo(path)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range info["depends"] {
		for _, n := range strings.Split(d, ",") {
			if n = strings.TrimSpace(n); n != "" {
				hard = append(hard, ModuleName(n))
			}
		}
	}
	for _, sd := range info["softdep"] {
		pre := false
		for _, w := range strings.Fields(sd) {
			switch w {
			case "pre:":
				pre = true
			case "post:":
				pre = false
			default:
				if pre {
					softPre = append(softPre, ModuleName(w))
				}
			}
		}
	}
	return hard, softPre, nil
}

// ResolveModules returns the modules to load for names, in load order:
// every module after everything it depends on, otherwise in the order
// asked. Names built into the kernel (modules.builtin) are left out, as are
// soft dependencies that are built in or absent; a hard dependency or a
// requested module that is neither a file nor built in is an error.
func ResolveModules(modulesDir string, names []string) ([]Module, error) {
	idx, err := indexModules(modulesDir)
	if err != nil {
		return nil, err
	}
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var order []Module
	var visit func(name string, chain []string, optional bool) error
	visit = func(name string, chain []string, optional bool) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			if optional {
				return nil // a soft dependency never forms a cycle
			}
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(chain, name), " -> "))
		}
		p, ok := idx.files[name]
		if !ok {
			switch {
			case idx.builtin[name], optional:
				state[name] = done
				return nil
			case idx.compressed[name] != "":
				return fmt.Errorf("module %s is compressed (%s); only uncompressed .ko files are supported", name, idx.compressed[name])
			}
			via := ""
			if len(chain) > 0 {
				via = " (needed by " + strings.Join(chain, " -> ") + ")"
			}
			return fmt.Errorf("module %s not found in %s and not built in%s", name, modulesDir, via)
		}
		state[name] = visiting
		hard, soft, err := depends(p)
		if err != nil {
			return err
		}
		chain = append(chain, name)
		for _, d := range soft {
			if err := visit(d, chain, true); err != nil {
				return err
			}
		}
		for _, d := range hard {
			if err := visit(d, chain, false); err != nil {
				return err
			}
		}
		state[name] = done
		order = append(order, Module{Name: name, Path: p, Depends: append(append([]string(nil), soft...), hard...)})
		return nil
	}
	for _, n := range names {
		if err := visit(ModuleName(n), nil, false); err != nil {
			return nil, fmt.Errorf("resolve kernel modules: %w", err)
		}
	}
	return order, nil
}
