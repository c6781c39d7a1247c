package disklayout

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
)

// SeededRand returns a deterministic byte stream (ChaCha8 keyed with the
// SHA-256 of seed) for Options.Rand: the same seed plans the same GUIDs, so an
// image build can be reproduced bit for bit. Use a seed that differs per
// build (e.g. variant, version and build ID), or every image shares its
// partition GUIDs.
func SeededRand(seed []byte) io.Reader {
	return rand.NewChaCha8(sha256.Sum256(seed))
}

// randomGUID reads a version 4 (random) GUID from r, in canonical upper-case
// text form.
func randomGUID(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])), nil
}

// guidFromDisk returns the canonical text form of a GUID stored on disk: the
// first three fields are little-endian.
func guidFromDisk(b []byte) string {
	return strings.ToUpper(fmt.Sprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%x-%x",
		b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8:10], b[10:16]))
}
