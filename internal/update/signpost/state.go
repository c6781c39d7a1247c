// Package signpost owns the A/B boot-set state machine kept in the OS disk's
// GPT attribute bits: priority, tries left and successful on each set's BOOT
// entry, and "boot has ever succeeded" on the PRIVATE entry. It loads that
// state from an image file or block device, finds the active set (the one
// holding the running root, or the one named by the caller), predicts the set
// GRUB boots next, applies the update lifecycle's operations (mark a boot
// successful, clear and validate the inactive set, upgrade, cancel, roll
// back), writes the whole GPT back, and emulates GRUB's choice for tests.
// It also provides the signpost command line.
//
// updog calls the Go API in-process: Load or LoadRunning, then one operation,
// then Save. A State is not safe for concurrent use; Save refuses to write if
// another process changed the table since Load.
package signpost

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/update/gptprio"
)

// Errors of the operations; the returned errors wrap them with the set's
// name and flags.
var (
	ErrActiveUnknown  = errors.New("the active set is not known")
	ErrSingleSet      = errors.New("the disk has a single partition set, so there is no inactive set")
	ErrAlreadyMarked  = errors.New("inactive set is already marked for upgrade")
	ErrNotMarkedValid = errors.New("inactive set is not marked valid")
	ErrWouldNotBoot   = errors.New("inactive set would not boot")
	ErrNoBootableSet  = gptprio.ErrNoBootableSet
	ErrTableChanged   = errors.New("the partition table changed since it was loaded")
)

// State is the boot state of one OS disk.
type State struct {
	disk     string
	isDevice bool
	table    *disklayout.Table
	loaded   disklayout.Partitions // as read, to detect concurrent changes at Save
	sets     []disklayout.PartitionSet
	private  disklayout.Partition
	active   disklayout.SetID
	warnings []string
}

// Load reads the GPT of disk (an image file or block device) and returns its
// boot state, with active as the active set. active may be empty when the
// caller does not know it; then only Status, HasBootEverSucceeded, Next and
// Save work, and the other operations return ErrActiveUnknown.
func Load(disk string, active disklayout.SetID) (*State, error) {
	f, err := os.Open(disk)
	if err != nil {
		return nil, fmt.Errorf("load boot state: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load boot state: %w", err)
	}
	t, err := disklayout.Read(f)
	if err != nil {
		return nil, fmt.Errorf("load boot state: %w", err)
	}
	s := &State{disk: disk, isDevice: fi.Mode()&os.ModeDevice != 0, table: t, loaded: t.Partitions()}
	if s.sets, err = s.loaded.Sets(); err != nil {
		return nil, fmt.Errorf("load boot state of %s: %w", disk, err)
	}
	if s.private, err = s.loaded.Private(); err != nil {
		return nil, fmt.Errorf("load boot state of %s: %w", disk, err)
	}
	switch {
	case active == "":
	case active != disklayout.SetA && active != disklayout.SetB:
		return nil, fmt.Errorf("load boot state of %s: invalid active set %q (want A or B)", disk, active)
	case active == disklayout.SetB && len(s.sets) == 1:
		return nil, fmt.Errorf("load boot state of %s: active set B: %w", disk, ErrSingleSet)
	}
	s.active = active
	if t.RecoveredFromBackup {
		s.warnings = append(s.warnings, "the primary GPT is invalid and was read from the backup; any write (e.g. rewrite-table) repairs it")
	}
	if err := disklayout.VerifyFile(f); err != nil {
		s.warnings = append(s.warnings, err.Error())
	}
	return s, nil
}

// Disk is the image file or block device the state was loaded from.
func (s *State) Disk() string { return s.disk }

// Warnings are problems found in the GPT at Load that did not stop it, such
// as a damaged copy.
func (s *State) Warnings() []string { return append([]string(nil), s.warnings...) }

// Sets returns the disk's partition sets: A, and B unless the disk has one.
func (s *State) Sets() []disklayout.PartitionSet {
	return append([]disklayout.PartitionSet(nil), s.sets...)
}

// Set returns partition set id.
func (s *State) Set(id disklayout.SetID) (disklayout.PartitionSet, error) {
	for _, set := range s.sets {
		if set.ID == id {
			return set, nil
		}
	}
	return disklayout.PartitionSet{}, fmt.Errorf("%s: no set %s: %w", s.disk, id, ErrSingleSet)
}

// Active returns the active set, or "" if it is not known.
func (s *State) Active() disklayout.SetID { return s.active }

// Inactive returns the set that is not active.
func (s *State) Inactive() (disklayout.SetID, error) {
	if len(s.sets) < 2 {
		return "", ErrSingleSet
	}
	if s.active == "" {
		return "", ErrActiveUnknown
	}
	return s.active.Other(), nil
}

// ActiveSet returns the active set's partitions.
func (s *State) ActiveSet() (disklayout.PartitionSet, error) {
	if s.active == "" {
		return disklayout.PartitionSet{}, ErrActiveUnknown
	}
	return s.Set(s.active)
}

// InactiveSet returns the inactive set's partitions, into which updog writes
// an update.
func (s *State) InactiveSet() (disklayout.PartitionSet, error) {
	id, err := s.Inactive()
	if err != nil {
		return disklayout.PartitionSet{}, err
	}
	return s.Set(id)
}

// Prio returns set id's flags.
func (s *State) Prio(id disklayout.SetID) Prio {
	set, err := s.Set(id)
	if err != nil {
		return Prio{}
	}
	return PrioOf(s.attrs(set.Boot.Number))
}

func (s *State) attrs(n int) uint64 {
	p, _ := s.table.Partitions().ByNumber(n)
	return p.Attributes
}

func (s *State) setPrio(id disklayout.SetID, p Prio) {
	set, _ := s.Set(id)
	n := set.Boot.Number
	// The entry exists: it was found in this table at Load.
	_ = s.table.SetAttributes(n, p.Apply(s.attrs(n)))
}

// Next returns the set GRUB boots next: of the sets with a try left or a
// successful boot, the one with the highest priority above zero, A on a tie.
// ok is false if GRUB would find none (and fail to boot).
//
// Unlike Bottlerocket's signpost, a set with priority 0 that is marked
// successful does not count: GRUB never picks it.
func (s *State) Next() (id disklayout.SetID, ok bool) {
	// The sets were checked at Load, and only attributes change since.
	set, ok, _ := gptprio.Next(s.table.Partitions())
	return set.ID, ok
}

// HasBootEverSucceeded reports bit 57 of the PRIVATE entry.
func (s *State) HasBootEverSucceeded() bool {
	return s.attrs(s.private.Number)>>BootSucceededBit&1 == 1
}

// MarkSuccessfulBoot marks the active set successful and records on the
// PRIVATE entry that a boot has succeeded. Other flags are unchanged.
func (s *State) MarkSuccessfulBoot() error {
	if s.active == "" {
		return fmt.Errorf("mark successful boot: %w", ErrActiveUnknown)
	}
	p := s.Prio(s.active)
	p.Successful = true
	s.setPrio(s.active, p)
	n := s.private.Number
	_ = s.table.SetAttributes(n, s.attrs(n)|1<<BootSucceededBit)
	return nil
}

// ClearInactive zeroes the inactive set's priority, tries and successful
// flag, so GRUB will not boot it while an update is written into it.
func (s *State) ClearInactive() error {
	in, err := s.Inactive()
	if err != nil {
		return fmt.Errorf("clear inactive set: %w", err)
	}
	s.setPrio(in, Prio{})
	return nil
}

// MarkInactiveValid gives the inactive set one try, keeping its priority: the
// update written into it is complete. It is still not booted until
// UpgradeToInactive raises its priority.
func (s *State) MarkInactiveValid() error {
	in, err := s.Inactive()
	if err != nil {
		return fmt.Errorf("mark inactive set valid: %w", err)
	}
	p := s.Prio(in)
	p.TriesLeft = 1
	s.setPrio(in, p)
	return nil
}

// UpgradeToInactive makes GRUB try the inactive set once at the next boot:
// inactive priority 2 and not successful, active priority 1. The inactive
// set must have priority 0 and not be successful (else ErrAlreadyMarked:
// clear it first), and must have a try left (else ErrNotMarkedValid).
func (s *State) UpgradeToInactive() error {
	in, err := s.Inactive()
	if err != nil {
		return fmt.Errorf("upgrade to inactive set: %w", err)
	}
	p := s.Prio(in)
	if p.Priority != 0 || p.Successful {
		return fmt.Errorf("upgrade to inactive set %s: %w (priority=%d successful=%v)", in, ErrAlreadyMarked, p.Priority, p.Successful)
	}
	if p.TriesLeft == 0 {
		return fmt.Errorf("upgrade to inactive set %s: %w (tries_left=0)", in, ErrNotMarkedValid)
	}
	p.Priority, p.Successful = 2, false
	s.setPrio(in, p)
	a := s.Prio(s.active)
	a.Priority = 1
	s.setPrio(s.active, a)
	return nil
}

// CancelUpgrade undoes UpgradeToInactive before the reboot: inactive priority
// 0, active priority 2. Tries are kept, so the upgrade can be redone.
func (s *State) CancelUpgrade() error {
	in, err := s.Inactive()
	if err != nil {
		return fmt.Errorf("cancel upgrade: %w", err)
	}
	p := s.Prio(in)
	p.Priority = 0
	s.setPrio(in, p)
	a := s.Prio(s.active)
	a.Priority = 2
	s.setPrio(s.active, a)
	return nil
}

// RollbackToInactive makes the inactive set the one GRUB boots next:
// inactive priority 2, active priority 1; successful flags are kept. The
// inactive set must pass WillBoot (else ErrWouldNotBoot): normally it is the
// previous, known-good set.
func (s *State) RollbackToInactive() error {
	in, err := s.Inactive()
	if err != nil {
		return fmt.Errorf("roll back to inactive set: %w", err)
	}
	p := s.Prio(in)
	if !p.WillBoot() {
		return fmt.Errorf("roll back to inactive set %s: %w (%s)", in, ErrWouldNotBoot, p)
	}
	p.Priority = 2
	s.setPrio(in, p)
	a := s.Prio(s.active)
	a.Priority = 1
	s.setPrio(s.active, a)
	return nil
}

// SimulateBoot does what GRUB's gptprio.next does at boot: pick the set Next
// returns, take one try from it if it has any, and boot it. The booted set
// becomes the active one. Like GRUB, it changes the table before booting;
// call Save to write it, as GRUB does. It fails with ErrNoBootableSet when
// GRUB would find no set ("no such partition").
func SimulateBoot(s *State) (disklayout.SetID, error) {
	c, err := gptprio.TakeTry(s.table)
	if err != nil {
		return "", fmt.Errorf("simulated boot of %s: %w", s.disk, err)
	}
	s.active = c.Set.ID
	return c.Set.ID, nil
}

// Save writes the whole GPT back to the disk, primary and backup, with the
// attributes the operations changed (see disklayout.Table.WriteBack for the
// order of writes and what a crash can leave). It holds an exclusive flock on
// the disk while writing, which also keeps udev from probing it, and refuses
// with ErrTableChanged if the table on disk no longer matches what Load read.
func (s *State) Save() error {
	f, err := os.OpenFile(s.disk, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("save boot state: %w", err)
	}
	defer f.Close()
	if err := lockExclusive(f); err != nil {
		return fmt.Errorf("save boot state: locking %s: %w", s.disk, err)
	}
	cur, err := disklayout.Read(f)
	if err != nil {
		return fmt.Errorf("save boot state: %w", err)
	}
	if !samePartitions(cur.Partitions(), s.loaded) {
		return fmt.Errorf("save boot state to %s: %w; load it again", s.disk, ErrTableChanged)
	}
	if err := s.table.WriteBack(f); err != nil {
		return fmt.Errorf("save boot state: %w", err)
	}
	s.loaded = s.table.Partitions()
	s.warnings = nil
	if err := disklayout.VerifyFile(f); err != nil {
		s.warnings = append(s.warnings, err.Error())
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save boot state to %s: %w", s.disk, err)
	}
	return nil
}

func samePartitions(a, b disklayout.Partitions) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// device returns the device node of partition n of a block-device disk, or
// "" for an image file.
func (s *State) device(n int) string {
	if !s.isDevice {
		return ""
	}
	sep := ""
	if last := s.disk[len(s.disk)-1]; last >= '0' && last <= '9' {
		sep = "p" // nvme0n1p3, mmcblk0p3, loop0p3
	}
	return s.disk + sep + strconv.Itoa(n)
}

// describe names a partition for humans: its device node, or "#N" in an
// image file.
func (s *State) describe(p disklayout.Partition) string {
	if d := s.device(p.Number); d != "" {
		return d
	}
	return "#" + strconv.Itoa(p.Number)
}
