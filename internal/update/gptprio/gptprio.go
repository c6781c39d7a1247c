// Package gptprio owns the A/B boot-set flags that Bottlerocket keeps in the
// GPT attribute bits of each set's BOOT entry (priority, tries left,
// successful), GRUB's gptprio.next choice among the sets, and what a boot
// loader does with them at every boot: choose a set, take one of its tries
// and write the table back before booting it.
//
// Three parts of Gantry share it: signpost (the update lifecycle's
// operations on the flags), gantry-init's selector (the boot loader of the
// UEFI chain, in the selector initramfs) and `gantry run`'s host boot loader
// (package qemu). It depends only on disklayout, so the initramfs stays free
// of command-line libraries.
package gptprio

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
)

// Attribute bits of a BOOT entry. Bits 48–63 of an entry's attribute field
// are defined by its partition type.
const (
	priorityShift = 48 // bits 48–51: priority, 0–15
	triesShift    = 52 // bits 52–55: tries left, 0–15
	successfulBit = 56 // bit 56: the set has booted successfully
)

// Mask covers the gptprio bits of a BOOT entry's attributes (48–56).
const Mask uint64 = 0x1ff << priorityShift

// ErrNoBootableSet is returned when no set has a priority above zero and
// a try left or a successful boot: GRUB would find none ("no such
// partition").
var ErrNoBootableSet = errors.New("no set is bootable")

// Prio is the gptprio state of a set, kept in its BOOT entry's attributes.
type Prio struct {
	Priority   int  `json:"priority"`
	TriesLeft  int  `json:"tries_left"`
	Successful bool `json:"successful"`
}

// Of decodes the gptprio bits of a BOOT entry's attributes.
func Of(attrs uint64) Prio {
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
	attrs &^= Mask
	attrs |= clamp(p.Priority)<<priorityShift | clamp(p.TriesLeft)<<triesShift
	if p.Successful {
		attrs |= 1 << successfulBit
	}
	return attrs
}

// WillBoot is Bottlerocket's will_boot: the set is known good (successful),
// or prioritised with a try left.
func (p Prio) WillBoot() bool {
	return (p.Priority > 0 && p.TriesLeft > 0) || p.Successful
}

// Eligible is GRUB's gptprio test for a candidate: a try left or known
// good, and a priority above zero.
func (p Prio) Eligible() bool {
	return (p.TriesLeft > 0 || p.Successful) && p.Priority > 0
}

func (p Prio) String() string {
	return fmt.Sprintf("priority=%d tries_left=%d successful=%v", p.Priority, p.TriesLeft, p.Successful)
}

// Next is GRUB's gptprio.next choice: of the sets whose flags are Eligible,
// the one with the highest priority, A on a tie. ok is false when no set
// qualifies; err when the table's sets are malformed.
func Next(ps disklayout.Partitions) (set disklayout.PartitionSet, ok bool, err error) {
	sets, err := ps.Sets()
	if err != nil {
		return set, false, err
	}
	best := 0
	for _, s := range sets {
		p := Of(s.Boot.Attributes)
		if p.Eligible() && p.Priority > best {
			best, set, ok = p.Priority, s, true
		}
	}
	return set, ok, nil
}

// Describe lists every set's flags, for error messages.
func Describe(ps disklayout.Partitions) string {
	sets, err := ps.Sets()
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, s := range sets {
		out = append(out, string(s.ID)+": "+Of(s.Boot.Attributes).String())
	}
	return strings.Join(out, "; ")
}

// Choice is what a boot loader chose at one boot: the set, and its flags
// before and after it took a try.
type Choice struct {
	Set           disklayout.PartitionSet
	Before, After Prio
}

// TookTry reports whether the boot used up one of the set's tries (it does
// unless the set had none left and is marked successful).
func (c Choice) TookTry() bool { return c.After.TriesLeft < c.Before.TriesLeft }

func (c Choice) String() string {
	took := "no try taken (successful)"
	if c.TookTry() {
		took = "took a try"
	}
	return fmt.Sprintf("set %s (BOOT %s; %s; %s)", c.Set.ID, c.Set.Boot.GUID, c.Before, took)
}

// TakeTry does in t what GRUB's gptprio.next does before it boots: choose
// the set Next returns and take one try from it when it has any. The caller
// writes t back (WriteBack) before booting the set. It fails with
// ErrNoBootableSet when no set is eligible.
func TakeTry(t *disklayout.Table) (Choice, error) {
	ps := t.Partitions()
	set, ok, err := Next(ps)
	if err != nil {
		return Choice{}, err
	}
	if !ok {
		return Choice{}, fmt.Errorf("%w (%s)", ErrNoBootableSet, Describe(ps))
	}
	c := Choice{Set: set, Before: Of(set.Boot.Attributes)}
	c.After = c.Before
	if c.After.TriesLeft > 0 {
		c.After.TriesLeft--
		attrs := c.After.Apply(set.Boot.Attributes)
		if err := t.SetAttributes(set.Boot.Number, attrs); err != nil {
			return Choice{}, err
		}
		c.Set.Boot.Attributes = attrs
	}
	return c, nil
}

// Boot chooses the set to boot on disk (an image file or block device) and
// takes its try, as a boot loader does at power-on: under an exclusive
// flock on the disk it reads the GPT, applies TakeTry and, when a try was
// taken, writes the whole table back (backup, then primary, each synced)
// before it returns. A crash before the write returns leaves the old flags
// or the new ones, never a mix (see disklayout.Table.WriteBack).
func Boot(disk string) (Choice, error) {
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return Choice{}, fmt.Errorf("choose boot set: %w", err)
	}
	defer f.Close()
	if err := LockExclusive(f); err != nil {
		return Choice{}, fmt.Errorf("choose boot set: locking %s: %w", disk, err)
	}
	t, err := disklayout.Read(f)
	if err != nil {
		return Choice{}, fmt.Errorf("choose boot set: %w", err)
	}
	c, err := TakeTry(t)
	if err != nil {
		return Choice{}, fmt.Errorf("choose boot set on %s: %w", disk, err)
	}
	if c.TookTry() {
		if err := t.WriteBack(f); err != nil {
			return Choice{}, fmt.Errorf("choose boot set: taking a try of set %s: %w", c.Set.ID, err)
		}
	}
	if err := f.Close(); err != nil {
		return Choice{}, fmt.Errorf("choose boot set: %w", err)
	}
	return c, nil
}

// Select is a boot loader's loop: Boot chooses a set and takes its try,
// then load reads that set's boot files. A set that cannot be loaded counts
// as a failed boot of it, and the choice is made again, as a machine does
// after its boot loader failed: each pick of a set that is not marked
// successful used up a try, so the choice moves on by itself. It gives up
// after attempts picks, or at once when ctx ends (so that a cancelled
// caller uses up no more tries). failed lists the sets that could not be
// loaded.
func Select(ctx context.Context, disk string, attempts int, load func(Choice) error) (c Choice, failed []error, err error) {
	attempts = max(attempts, 1)
	for range attempts {
		if err := ctx.Err(); err != nil {
			return Choice{}, failed, err
		}
		c, err := Boot(disk)
		if err != nil {
			return Choice{}, failed, err
		}
		if err := load(c); err != nil {
			if ctx.Err() != nil {
				return Choice{}, failed, err
			}
			failed = append(failed, fmt.Errorf("set %s: %w", c.Set.ID, err))
			continue
		}
		return c, failed, nil
	}
	return Choice{}, failed, fmt.Errorf("no set could be loaded in %d attempts: %w", attempts, errors.Join(failed...))
}
