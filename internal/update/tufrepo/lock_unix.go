//go:build unix

package tufrepo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockRepo takes the repository's exclusive lock, so that two publishers
// cannot interleave their changes; it fails at once if the lock is held.
func lockRepo(dir string) (unlock func(), err error) {
	p := filepath.Join(dir, lockName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock repository: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("repository %s is locked by another publisher (%s)", dir, p)
		}
		return nil, fmt.Errorf("lock repository %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
