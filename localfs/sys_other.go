//go:build !linux

package localfs

import (
	"errors"
	"os"

	"github.com/gantry-os/gantry/disklayout"
)

var (
	errLinuxOnly  = errors.New("only supported on Linux")
	errWouldBlock = errors.New("would block")
)

func flockNB(*os.File) error { return nil }

func deviceOf(string) (major, minor uint32, err error) { return 0, 0, errLinuxOnly }

func resizePartition(*os.File, disklayout.Partition) error { return errLinuxOnly }
