// Package procgroup runs helper programs in their own process group, so
// that a timeout or cancellation kills the program and everything it
// started, and waiting for its output cannot hang on a leftover child.
package procgroup

import (
	"os/exec"
	"syscall"
	"time"
)

// Configure makes cmd start in a new process group that is killed as a
// whole when its context ends.
func Configure(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 2 * time.Second
}
