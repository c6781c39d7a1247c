package updog

import (
	"fmt"
	"os"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/update/signpost"
)

// signpostSets is BootSets over signpost and the disk's GPT.
type signpostSets struct {
	st       *signpost.State
	sections []*disklayout.Section
}

// OpenSignpost returns an opener of the boot sets on disk (an image file or
// a block device) with active as the running set; an empty disk means the
// disk of the running root.
func OpenSignpost(disk, active string) func() (BootSets, error) {
	return func() (BootSets, error) {
		var st *signpost.State
		var err error
		if disk == "" {
			st, err = signpost.LoadRunning()
		} else {
			var id disklayout.SetID
			if id, err = disklayout.ParseSetID(active); err == nil {
				st, err = signpost.Load(disk, id)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("read the partition sets: %w", err)
		}
		return &signpostSets{st: st}, nil
	}
}

func (s *signpostSets) save(op func() error) error {
	if err := op(); err != nil {
		return err
	}
	return s.st.Save()
}

func (s *signpostSets) ClearInactive() error     { return s.save(s.st.ClearInactive) }
func (s *signpostSets) MarkInactiveValid() error { return s.save(s.st.MarkInactiveValid) }
func (s *signpostSets) UpgradeToInactive() error { return s.save(s.st.UpgradeToInactive) }
func (s *signpostSets) CancelUpgrade() error     { return s.save(s.st.CancelUpgrade) }

func (s *signpostSets) InactivePartition(kind string) (Region, error) {
	set, err := s.st.InactiveSet()
	if err != nil {
		return nil, err
	}
	var p disklayout.Partition
	switch kind {
	case "boot":
		p = set.Boot
	case "root":
		p = set.Root
	case "hash":
		p = set.Hash
	default:
		return nil, fmt.Errorf("no %q partition in a set", kind)
	}
	sec, err := disklayout.OpenPartition(s.st.Disk(), p.Number, os.O_RDWR)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p.Role(), err)
	}
	s.sections = append(s.sections, sec)
	return sec, nil
}

func (s *signpostSets) Close() error {
	var first error
	for _, sec := range s.sections {
		if err := sec.Close(); err != nil && first == nil {
			first = err
		}
	}
	s.sections = nil
	return first
}
