//go:build unix

package gptprio

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// lockWait is how long LockExclusive waits for another holder of the lock.
const lockWait = 10 * time.Second

// LockExclusive takes an exclusive flock on f, released when f is closed.
// Tools that change partition tables (sfdisk, systemd-repart) take the same
// lock on the whole disk, and udev skips probing a disk while it is held.
// It gives up after 10 s rather than hang a boot on a stuck holder.
func LockExclusive(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(lockWait)
	for {
		var lockErr error
		if err := sc.Control(func(fd uintptr) {
			lockErr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
		}); err != nil {
			return err
		}
		switch {
		case lockErr == nil:
			return nil
		case !errors.Is(lockErr, syscall.EWOULDBLOCK) && !errors.Is(lockErr, syscall.EINTR):
			return lockErr
		case time.Now().After(deadline):
			return errors.New("another process holds the disk's lock")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
