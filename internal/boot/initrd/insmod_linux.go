//go:build linux

package initrd

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// InsertModule loads the module file at path into the running kernel with
// finit_module(2), without parameters. It reports whether the kernel
// inserted it: a module that is loaded already is (false, nil). It loads
// no dependencies; ResolveModules gives the order.
func InsertModule(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("load module %s: %w", ModuleName(path), err)
	}
	defer f.Close()
	switch err := unix.FinitModule(int(f.Fd()), "", 0); {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EEXIST):
		return false, nil
	default:
		return false, fmt.Errorf("load module %s: finit_module %s: %w", ModuleName(path), path, err)
	}
}
