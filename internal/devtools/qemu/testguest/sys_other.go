//go:build !linux

package testguest

import (
	"errors"
	"net/netip"
)

var errNotLinux = errors.New("only supported on Linux")

func kernelRelease() (string, error)                    { return "", errNotLinux }
func configureLink(int, netip.Prefix, netip.Addr) error { return errNotLinux }
