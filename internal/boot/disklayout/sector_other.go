//go:build !linux

package disklayout

import "os"

// deviceSectorSize assumes 512-byte sectors where Gantry does not run.
func deviceSectorSize(*os.File) (int, error) { return 512, nil }
