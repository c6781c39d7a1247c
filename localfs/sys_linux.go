//go:build linux

package localfs

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gantry-os/gantry/disklayout"
)

var errWouldBlock = syscall.EWOULDBLOCK

// flockNB tries to take an exclusive flock on f without waiting.
func flockNB(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lockErr error
	if err := sc.Control(func(fd uintptr) { lockErr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB) }); err != nil {
		return err
	}
	return lockErr
}

// deviceOf returns the major and minor number of the device holding path's
// filesystem.
func deviceOf(path string) (major, minor uint32, err error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return unix.Major(st.Dev), unix.Minor(st.Dev), nil
}

// resizePartition tells the kernel the new start and size of partition p
// of the disk f (BLKPG_RESIZE_PARTITION); the kernel checks that it
// overlaps no other partition.
func resizePartition(f *os.File, p disklayout.Partition) error {
	part := unix.BlkpgPartition{Start: p.Start, Length: p.Size, Pno: int32(p.Number)}
	arg := unix.BlkpgIoctlArg{
		Op:      unix.BLKPG_RESIZE_PARTITION,
		Datalen: int32(unsafe.Sizeof(part)),
		Data:    (*byte)(unsafe.Pointer(&part)),
	}
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := sc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, unix.BLKPG, uintptr(unsafe.Pointer(&arg)))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return fmt.Errorf("BLKPG_RESIZE_PARTITION: %w", errno)
	}
	return nil
}
