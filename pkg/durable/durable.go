// Package durable owns what makes a write survive a power cut: syncing the
// directory that a file was created in or renamed into. The datastore, the
// migrations, the applier and the update repository all write this way.
package durable

import (
	"fmt"
	"os"
)

// SyncDir fsyncs a directory, making renames and new entries in it durable.
func SyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
