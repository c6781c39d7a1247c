//go:build !linux

package localfs

import (
	"errors"
	"os"

	"github.com/gantry-os/gantry/disklayout"
)

var errLinuxOnly = errors.New("only supported on Linux")

func resizePartition(*os.File, disklayout.Partition) error { return errLinuxOnly }
