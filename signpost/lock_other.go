//go:build !unix

package signpost

import "os"

// lockExclusive does nothing where Gantry does not run.
func lockExclusive(*os.File) error { return nil }
