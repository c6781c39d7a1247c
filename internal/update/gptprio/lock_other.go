//go:build !unix

package gptprio

import "os"

// LockExclusive does nothing where Gantry does not run.
func LockExclusive(*os.File) error { return nil }
