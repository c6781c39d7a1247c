//go:build linux

package disklayout

import (
	"os"
	"syscall"
	"unsafe"
)

// blkSSZGet is the BLKSSZGET ioctl: a block device's logical sector size.
const blkSSZGet = 0x1268

// deviceSectorSize returns the logical sector size of a block device.
func deviceSectorSize(f *os.File) (int, error) {
	var n int32
	sc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var errno syscall.Errno
	if err := sc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, blkSSZGet, uintptr(unsafe.Pointer(&n)))
	}); err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
