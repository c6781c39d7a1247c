//go:build linux

package migrator

import "syscall"

// childAttr keeps a migration in the migrator's process group, so that
// killing the group kills both, and has the kernel kill it if the migrator
// dies first, so that no migration outlives the run that started it. (The
// kernel ties Pdeathsig to the thread that forked; Go keeps its threads
// alive unless a goroutine exits while locked to one, which the migrator
// never does.)
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
