package bootinit

import (
	"fmt"
	"strings"

	"github.com/gantry-os/gantry/disklayout"
)

// The gptprio bits of a BOOT entry's attributes (as in package signpost,
// which gantry-init does not import to stay free of its command-line
// dependencies).
const (
	priorityShift = 48
	triesShift    = 52
	successfulBit = 56
)

// prio is a set's gptprio flags.
type prio struct {
	priority, tries int
	successful      bool
}

func prioOf(attrs uint64) prio {
	return prio{
		priority:   int(attrs >> priorityShift & 0xf),
		tries:      int(attrs >> triesShift & 0xf),
		successful: attrs>>successfulBit&1 == 1,
	}
}

func (p prio) String() string {
	return fmt.Sprintf("priority=%d tries_left=%d successful=%v", p.priority, p.tries, p.successful)
}

// NextSet is GRUB's gptprio choice (signpost's Next): of the sets with a
// try left or a successful boot, the one with the highest priority above
// zero, A on a tie. ok is false if no set qualifies.
func NextSet(ps disklayout.Partitions) (id disklayout.SetID, ok bool, err error) {
	sets, err := ps.Sets()
	if err != nil {
		return "", false, err
	}
	best := 0
	for _, s := range sets {
		p := prioOf(s.Boot.Attributes)
		if (p.tries > 0 || p.successful) && p.priority > best {
			best, id, ok = p.priority, s.ID, true
		}
	}
	return id, ok, nil
}

// ChooseSet returns the partition set to boot and why: the set the command
// line forces (gantry.set), else the set whose BOOT partition GUID it names
// (gantry.bootuuid, what GRUB booted), else the set GRUB's gptprio would
// choose from the GPT flags now.
//
// The last is right only when no boot loader has taken a try from the set
// (direct kernel boot, as in tests): after GRUB has used a new set's last
// try, the flags no longer say which set it booted. The boot loader
// therefore passes gantry.bootuuid or gantry.set.
func ChooseSet(ps disklayout.Partitions, c Cmdline) (disklayout.PartitionSet, string, error) {
	switch {
	case c.Set != "":
		s, err := ps.Set(c.Set)
		if err != nil {
			return disklayout.PartitionSet{}, "", fmt.Errorf("choose set %s (%s): %w", c.Set, ParamSet, err)
		}
		return s, ParamSet + "=" + string(c.Set), nil
	case c.BootUUID != "":
		sets, err := ps.Sets()
		if err != nil {
			return disklayout.PartitionSet{}, "", fmt.Errorf("choose set: %w", err)
		}
		for _, s := range sets {
			if strings.EqualFold(s.Boot.GUID, c.BootUUID) {
				return s, ParamBootUUID + "=" + c.BootUUID, nil
			}
		}
		return disklayout.PartitionSet{}, "", fmt.Errorf("choose set: no BOOT partition has GUID %s (%s)", c.BootUUID, ParamBootUUID)
	}
	id, ok, err := NextSet(ps)
	if err != nil {
		return disklayout.PartitionSet{}, "", fmt.Errorf("choose set: %w", err)
	}
	if !ok {
		var flags []string
		sets, _ := ps.Sets()
		for _, s := range sets {
			flags = append(flags, string(s.ID)+": "+prioOf(s.Boot.Attributes).String())
		}
		return disklayout.PartitionSet{}, "", fmt.Errorf("choose set: no set is bootable by its GPT flags (%s)", strings.Join(flags, "; "))
	}
	s, err := ps.Set(id)
	if err != nil {
		return disklayout.PartitionSet{}, "", fmt.Errorf("choose set: %w", err)
	}
	return s, "GPT flags (" + prioOf(s.Boot.Attributes).String() + ")", nil
}
