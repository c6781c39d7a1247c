package disklayout

import "strings"

// NotADisk says whether a kernel block device name (as in /sys/block) is one
// that never holds a Gantry disk: loop, RAM and zram devices, device-mapper
// and md devices, optical and floppy drives, network block devices.
func NotADisk(name string) bool {
	for _, p := range []string{"loop", "ram", "zram", "dm-", "sr", "fd", "md", "nbd"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
