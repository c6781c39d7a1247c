package applier

import (
	"fmt"
	"github.com/gantry-os/gantry/pkg/durable"
	"os"
	"path/filepath"
	"strconv"
)

// WriteFileAtomic replaces path with content and mode: it writes a
// temporary file in the same directory, sets the mode (umask does not
// apply), syncs it, renames it over path and syncs the directory, so a
// reader or a crash sees the old file or the new one, never a mix.
func WriteFileAtomic(path string, content []byte, mode string) error {
	perm, err := strconv.ParseUint(mode, 8, 32)
	if err != nil {
		return fmt.Errorf("invalid mode %q: %w", mode, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return fmt.Errorf("write: %w", err)
	}
	if err := tmp.Chmod(os.FileMode(perm)); err != nil {
		tmp.Close()
		return fmt.Errorf("set mode: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace: %w", err)
	}
	return durable.SyncDir(dir)
}
