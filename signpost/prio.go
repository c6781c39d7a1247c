package signpost

import "fmt"

// Attribute bits of the GPT entries signpost owns. Bits 48–63 of an entry's
// attribute field are defined by its partition type.
const (
	priorityShift = 48 // bits 48–51 of a BOOT entry: priority, 0–15
	triesShift    = 52 // bits 52–55 of a BOOT entry: tries left, 0–15
	successfulBit = 56 // bit 56 of a BOOT entry: the set has booted successfully
	// BootSucceededBit is bit 57 of the PRIVATE entry: some boot of this
	// disk has ever succeeded.
	BootSucceededBit = 57

	prioMask uint64 = 0x1ff << priorityShift // bits 48–56
)

// Prio is the gptprio state of a set, kept in its BOOT entry's attributes.
type Prio struct {
	Priority   int  `json:"priority"`
	TriesLeft  int  `json:"tries_left"`
	Successful bool `json:"successful"`
}

// PrioOf decodes the gptprio bits of a BOOT entry's attributes.
func PrioOf(attrs uint64) Prio {
	return Prio{
		Priority:   int(attrs >> priorityShift & 0xf),
		TriesLeft:  int(attrs >> triesShift & 0xf),
		Successful: attrs>>successfulBit&1 == 1,
	}
}

// Apply returns attrs with bits 48–56 replaced by p; every other bit is kept.
// Priority and TriesLeft are clamped to 0–15.
func (p Prio) Apply(attrs uint64) uint64 {
	clamp := func(n int) uint64 { return uint64(min(max(n, 0), 15)) }
	attrs &^= prioMask
	attrs |= clamp(p.Priority)<<priorityShift | clamp(p.TriesLeft)<<triesShift
	if p.Successful {
		attrs |= 1 << successfulBit
	}
	return attrs
}

// WillBoot is Bottlerocket's will_boot: the set is known good (successful),
// or prioritised with a try left. rollback-to-inactive requires it.
func (p Prio) WillBoot() bool {
	return (p.Priority > 0 && p.TriesLeft > 0) || p.Successful
}

// eligible is GRUB's gptprio test for a candidate: a try left or known good,
// and a priority above zero.
func (p Prio) eligible() bool {
	return (p.TriesLeft > 0 || p.Successful) && p.Priority > 0
}

func (p Prio) String() string {
	return fmt.Sprintf("priority=%d tries_left=%d successful=%v", p.Priority, p.TriesLeft, p.Successful)
}
