//go:build !linux

package initrd

import (
	"fmt"
	"runtime"
)

// InsertModule loads kernel modules on Linux only.
func InsertModule(path string) (bool, error) {
	return false, fmt.Errorf("load module %s: not supported on %s", ModuleName(path), runtime.GOOS)
}
