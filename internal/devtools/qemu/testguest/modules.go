package testguest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gantry-os/gantry/internal/boot/initrd"
)

// ModuleLoader loads kernel modules and their dependencies from the
// image's module tree without modprobe, modules.dep or udev: it indexes the
// tree's .ko files by name and reads each module's dependencies from its
// .modinfo section, as the initramfs does for the root's modules.
type ModuleLoader struct {
	// Dir is the module tree of the running kernel, e.g.
	// /usr/lib/modules/6.1.0-28-cloud-amd64. Required.
	Dir string
	// Sysfs is where /sys is mounted; a module with a directory under
	// Sysfs/module is loaded (or built in) already. Empty means /sys.
	Sysfs string
	// Insert loads one module file; nil means finit_module(2). Errors that
	// wrap EEXIST count as "already loaded".
	Insert func(path string) error
}

// DefaultModuleDir returns the module tree of the running kernel:
// /usr/lib/modules/<release>, or /lib/modules/<release> when only that
// exists.
func DefaultModuleDir() (string, error) {
	rel, err := kernelRelease()
	if err != nil {
		return "", err
	}
	dir := filepath.Join("/usr/lib/modules", rel)
	if _, err := os.Stat(dir); err != nil {
		if alt := filepath.Join("/lib/modules", rel); exists(alt) {
			return alt, nil
		}
	}
	return dir, nil
}

// Load loads each named module after its dependencies, in the order given,
// skipping those that are loaded already. It returns the modules it
// inserted.
func (m ModuleLoader) Load(ctx context.Context, names ...string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	insert := m.Insert
	if insert == nil {
		insert = func(path string) error { _, err := initrd.InsertModule(path); return err }
	}
	sysfs := m.Sysfs
	if sysfs == "" {
		sysfs = "/sys"
	}
	index, err := indexModules(m.Dir)
	if err != nil {
		return nil, err
	}
	var loaded []string
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		name = ModuleName(name)
		switch state[name] {
		case 1:
			return fmt.Errorf("module %s: dependency cycle %s", name, strings.Join(append(chain, name), " -> "))
		case 2:
			return nil
		}
		if exists(filepath.Join(sysfs, "module", name)) {
			state[name] = 2
			return nil
		}
		path, ok := index[name]
		if !ok {
			return fmt.Errorf("module %s: not found under %s (and not loaded)", name, m.Dir)
		}
		state[name] = 1
		deps, err := moduleDepends(path)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, append(chain, name)); err != nil {
				return err
			}
		}
		if err := insert(path); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("load module %s (%s): %w", name, path, err)
		} else if err == nil {
			loaded = append(loaded, name)
		}
		state[name] = 2
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return loaded, err
		}
	}
	return loaded, nil
}

// ModuleName is the kernel's name for a module: dashes become underscores
// and any .ko suffix goes.
func ModuleName(s string) string { return initrd.ModuleName(s) }

// indexModules maps each module name to its .ko file under dir.
func indexModules(dir string) (map[string]string, error) {
	if dir == "" {
		return nil, errors.New("load modules: no module directory")
	}
	index := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".ko") {
			index[ModuleName(d.Name())] = path
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load modules: index %s: %w", dir, err)
	}
	return index, nil
}

// moduleDepends reads the depends= entry of a module's .modinfo section.
func moduleDepends(path string) ([]string, error) { return initrd.ModuleDepends(path) }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
