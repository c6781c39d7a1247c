//go:build !linux

package localfs

import (
	"errors"
	"os"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
)

var errLinuxOnly = errors.New("only supported on Linux")

func resizePartition(*os.File, disklayout.Partition) error { return errLinuxOnly }

// sysMounter does not mount outside Linux.
type sysMounter struct{}

func (sysMounter) mounted() (map[string]bool, error) { return nil, errLinuxOnly }
func (sysMounter) mount(Mount) error                 { return errLinuxOnly }
