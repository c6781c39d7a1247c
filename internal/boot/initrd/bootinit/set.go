package bootinit

import (
	"fmt"
	"strings"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/update/gptprio"
)

// NextSet is GRUB's gptprio choice (gptprio.Next, which signpost uses too):
// of the sets with a try left or a successful boot, the one with the
// highest priority above zero, A on a tie. ok is false if no set qualifies.
func NextSet(ps disklayout.Partitions) (id disklayout.SetID, ok bool, err error) {
	set, ok, err := gptprio.Next(ps)
	return set.ID, ok, err
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
		return disklayout.PartitionSet{}, "", fmt.Errorf("choose set: no set is bootable by its GPT flags (%s)", gptprio.Describe(ps))
	}
	s, err := ps.Set(id)
	if err != nil {
		return disklayout.PartitionSet{}, "", fmt.Errorf("choose set: %w", err)
	}
	return s, "GPT flags (" + gptprio.Of(s.Boot.Attributes).String() + ")", nil
}
