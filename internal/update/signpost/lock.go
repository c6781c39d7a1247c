package signpost

import (
	"os"

	"github.com/gantry-os/gantry/internal/update/gptprio"
)

// lockExclusive takes the exclusive flock on the disk that every writer of
// its GPT takes (gptprio.LockExclusive).
func lockExclusive(f *os.File) error { return gptprio.LockExclusive(f) }
