//go:build !linux

package signpost

import "errors"

// rootDevice is only implemented on Linux.
func rootDevice(string) (major, minor uint32, err error) {
	return 0, 0, errors.New("finding the root device needs Linux sysfs; pass --disk and --active")
}
