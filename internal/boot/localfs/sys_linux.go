//go:build linux

package localfs

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
)

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

// sysMounter mounts with mount(2).
type sysMounter struct{}

func (sysMounter) mounted() (map[string]bool, error) { return readMountinfo() }

func (sysMounter) mount(m Mount) error {
	if m.Mkdir {
		if err := os.MkdirAll(m.Target, 0o755); err != nil {
			return err
		}
	}
	if m.Bind {
		return unix.Mount(m.Source, m.Target, "", unix.MS_BIND, "")
	}
	dev, err := filepath.EvalSymlinks(m.Source)
	if err != nil {
		return err
	}
	return unix.Mount(dev, m.Target, "ext4", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOATIME, "")
}
