package signpost

import "github.com/gantry-os/gantry/internal/update/gptprio"

// BootSucceededBit is bit 57 of the PRIVATE entry: some boot of this disk
// has ever succeeded. The BOOT entries' bits are package gptprio's.
const BootSucceededBit = 57

// prioMask covers the gptprio bits of a BOOT entry.
const prioMask = gptprio.Mask

// Prio is the gptprio state of a set, kept in its BOOT entry's attributes
// (package gptprio owns the bits and GRUB's choice).
type Prio = gptprio.Prio

// PrioOf decodes the gptprio bits of a BOOT entry's attributes.
func PrioOf(attrs uint64) Prio { return gptprio.Of(attrs) }
