// Package generator owns Gantry's own setting generators, run by sundog
// through the settings-generator command: the update wave seed, and the
// host name and the node's IP address (from package netdog, which knows the
// network). Each prints a JSON value, or exits 2 when it has nothing to
// offer.
package generator

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gantry-os/gantry/pkg/model"
)

// ErrNothing means the generator has no value to offer (sundog skips it).
var ErrNothing = errors.New("no value to generate")

// Seed returns a random wave seed in 0..2047.
func Seed() (uint32, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("read random bytes: %w", err)
	}
	return binary.LittleEndian.Uint32(b[:]) % (model.MaxUpdateSeed + 1), nil
}
