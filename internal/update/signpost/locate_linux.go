//go:build linux

package signpost

import (
	"fmt"
	"syscall"
)

// rootDevice returns the major and minor number of the device holding path's
// file system.
func rootDevice(path string) (major, minor uint32, err error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	dev := uint64(st.Dev)
	major = uint32((dev>>8)&0xfff | (dev>>32)&^0xfff)
	minor = uint32(dev&0xff | (dev>>12)&^0xff)
	return major, minor, nil
}
