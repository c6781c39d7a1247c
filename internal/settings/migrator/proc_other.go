//go:build !linux

package migrator

import "syscall"

// childAttr keeps a migration in the migrator's process group, so that
// killing the group kills both.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
