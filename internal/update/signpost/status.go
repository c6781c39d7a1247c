package signpost

import (
	"fmt"
	"io"
	"strings"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
)

// Status is the boot state as `signpost status` reports it.
type Status struct {
	Disk string `json:"disk"`
	// Active is the active set, "" if not known.
	Active disklayout.SetID `json:"active"`
	// Next is the set GRUB boots next, "" if none would boot.
	Next                 disklayout.SetID `json:"next"`
	BootHasEverSucceeded bool             `json:"boot_has_ever_succeeded"`
	Sets                 []SetStatus      `json:"sets"`
	Warnings             []string         `json:"warnings,omitempty"`
}

// SetStatus is one set's partitions and flags.
type SetStatus struct {
	ID     disklayout.SetID `json:"id"`
	Active bool             `json:"active"`
	Prio
	WillBoot bool          `json:"will_boot"`
	Boot     PartitionInfo `json:"boot"`
	Root     PartitionInfo `json:"root"`
	Hash     PartitionInfo `json:"hash"`
}

// PartitionInfo identifies a partition of the set.
type PartitionInfo struct {
	Number int    `json:"number"`
	Name   string `json:"name"`
	GUID   string `json:"guid"`
	// Device is the partition's device node when the disk is a block device.
	Device string `json:"device,omitempty"`
}

// Status returns the state for reporting.
func (s *State) Status() Status {
	st := Status{Disk: s.disk, Active: s.active, BootHasEverSucceeded: s.HasBootEverSucceeded(), Warnings: s.Warnings()}
	if id, ok := s.Next(); ok {
		st.Next = id
	}
	info := func(p disklayout.Partition) PartitionInfo {
		return PartitionInfo{Number: p.Number, Name: p.Name, GUID: p.GUID, Device: s.device(p.Number)}
	}
	for _, set := range s.sets {
		p := s.Prio(set.ID)
		st.Sets = append(st.Sets, SetStatus{
			ID: set.ID, Active: set.ID == s.active, Prio: p, WillBoot: p.WillBoot(),
			Boot: info(set.Boot), Root: info(set.Root), Hash: info(set.Hash),
		})
	}
	return st
}

// WriteText writes the status for humans. Each set is labelled with its real
// name and its own partitions and flags (Bottlerocket's signpost prints the
// active set's partitions on the line labelled A), and the active set is
// marked.
func (s *State) WriteText(w io.Writer) error {
	st := s.Status()
	var b strings.Builder
	fmt.Fprintf(&b, "OS disk: %s\n", st.Disk)
	for i, set := range st.Sets {
		mark := ""
		if set.Active {
			mark = "  (active)"
		}
		fmt.Fprintf(&b, "Set %s:   boot=%s root=%s hash=%s  %s%s\n", set.ID,
			s.describe(s.sets[i].Boot), s.describe(s.sets[i].Root), s.describe(s.sets[i].Hash), set.Prio, mark)
	}
	active, next := "unknown", "none (no set would boot)"
	if st.Active != "" {
		active = "Set " + string(st.Active)
	}
	if st.Next != "" {
		next = "Set " + string(st.Next)
	}
	fmt.Fprintf(&b, "Active:  %s\n", active)
	fmt.Fprintf(&b, "Next:    %s\n", next)
	fmt.Fprintf(&b, "Boot has ever succeeded: %v\n", st.BootHasEverSucceeded)
	for _, warn := range st.Warnings {
		fmt.Fprintf(&b, "Warning: %s\n", warn)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
