package disklayout

import (
	"crypto/rand"
	"fmt"
	"io"
)

// PartitionPlan says where the data partition lives.
type PartitionPlan string

const (
	// Split puts the data partition (DATA-B) on a disk of its own and leaves
	// a 1 MiB DATA-A on the OS disk as the fallback. It is the default.
	Split PartitionPlan = "split"
	// Unified puts a full-size DATA-A on the OS disk after PRIVATE.
	Unified PartitionPlan = "unified"
)

// Sizes in MiB: the fixed ones, and the per-GiB scale factors of the
// partitions that grow with the OS image. The scale factors are chosen so
// that a 2 GiB image gets the historical Bottlerocket sizes of BOOT, ROOT
// and HASH, and the bank's size (500 MiB per GiB). They must never grow for
// an existing image size: the partitions of a bank are adjacent and updates
// rewrite them in place, so a larger image would not fit on disks already
// deployed.
//
// EFI is larger than Bottlerocket's 5 MiB: the ESP holds the UEFI chain's
// kernel and selector initramfs (docs/boot.md), not only a boot loader. Its
// space comes from RESERVED of the same bank, so the bank's size, and the
// positions of ROOT and HASH relative to BOOT, are unchanged.
const (
	gptMiB   = 1 // at each end of every disk
	biosMiB  = 4 // one per disk
	dataAMiB = 1 // the split plan's fallback data partition

	efiScale       = 12
	bootScale      = 20
	rootScale      = 460
	hashScale      = 5
	reserveScale   = 3
	privateScale   = 24
	overheadMiB    = 2*gptMiB + biosMiB
	defaultOSGiB   = 2
	defaultDataGiB = 1
)

// BootAAttributes are BOOT-A's attributes in a new image: priority 1 (bit 48)
// and successful (bit 56), so GRUB boots set A. BOOT-B starts at zero.
const BootAAttributes uint64 = 1<<48 | 1<<56

// Options are the inputs of Plan. The zero value plans the default image:
// 2 GiB OS disk, 1 GiB split data disk, two banks.
type Options struct {
	// OSImageGiB is the OS disk's size in GiB (default 2; 4 for variants
	// with large root filesystems).
	OSImageGiB int
	// DataImageGiB is the data partition's size in GiB (default 1). In the
	// split plan it is the data disk's size; in the unified plan it is
	// added to the OS disk.
	DataImageGiB int
	// PartitionPlan is Split (default) or Unified.
	PartitionPlan PartitionPlan
	// SingleBank plans one bank with every bank partition doubled, for
	// images that are never updated in place. Signpost then sees a
	// single-set disk.
	SingleBank bool
	// Rand is the source of the random partition and disk GUIDs (default
	// crypto/rand). Pass SeededRand(seed) for reproducible images.
	Rand io.Reader
}

// Disk is the plan of one disk: its size, GUID and partitions.
type Disk struct {
	// Size is the disk's size in bytes.
	Size int64 `json:"size"`
	// GUID is the disk GUID of the GPT header.
	GUID string `json:"guid"`
	// Partitions are in entry-number order, which is also disk order.
	Partitions Partitions `json:"partitions"`
}

// Layout is the plan for an image: the OS disk and, in the split plan, the
// data disk.
type Layout struct {
	// Options are the options planned for, with defaults filled in (Rand
	// is not kept).
	Options Options `json:"-"`
	OS      Disk    `json:"os"`
	// Data is nil in the unified plan.
	Data *Disk `json:"data,omitempty"`
}

// Plan computes the partition layout for opts. Every partition starts on a
// MiB boundary; the first and last MiB of each disk hold the GPT.
//
// Two banks of 500 MiB per GiB of image each hold EFI (12/GiB), BOOT (20/GiB),
// ROOT (460/GiB), HASH (5/GiB) and RESERVED (3/GiB). PRIVATE is
// 24/GiB − 7 (the GPTs, BIOS-BOOT and DATA-A are taken from it). In the
// unified plan DATA-A is the whole data size and the disk's last 2 MiB are
// left free (1 MiB of them for the backup GPT), exactly as Bottlerocket lays
// it out; boot-time discovery grows the data partition to the disk's end.
func Plan(opts Options) (*Layout, error) {
	if opts.OSImageGiB == 0 {
		opts.OSImageGiB = defaultOSGiB
	}
	if opts.DataImageGiB == 0 {
		opts.DataImageGiB = defaultDataGiB
	}
	if opts.PartitionPlan == "" {
		opts.PartitionPlan = Split
	}
	if opts.OSImageGiB < 1 || opts.OSImageGiB > 1024 {
		return nil, fmt.Errorf("plan: OS image size %d GiB out of range 1–1024", opts.OSImageGiB)
	}
	if opts.DataImageGiB < 1 {
		return nil, fmt.Errorf("plan: data image size %d GiB must be at least 1", opts.DataImageGiB)
	}
	if opts.PartitionPlan != Split && opts.PartitionPlan != Unified {
		return nil, fmt.Errorf("plan: unknown partition plan %q (want split or unified)", opts.PartitionPlan)
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	g := int64(opts.OSImageGiB)
	efi, boot, root, hash := g*efiScale, g*bootScale, g*rootScale, g*hashScale
	reserved := g * reserveScale
	private := g*privateScale - overheadMiB - dataAMiB

	var parts Partitions
	offset := int64(gptMiB)
	add := func(kind Kind, set SetID, name, typ string, sizeMiB int64) {
		parts = append(parts, Partition{
			Number: len(parts) + 1, Kind: kind, Set: set, Name: name, Type: typ,
			Start: offset * MiB, Size: sizeMiB * MiB,
		})
		offset += sizeMiB
	}
	add(KindBIOS, "", NameBIOSBoot, TypeBIOSBoot, biosMiB)
	banks, scale := []SetID{SetA, SetB}, int64(1)
	if opts.SingleBank {
		banks, scale = []SetID{SetA}, 2
	}
	for _, b := range banks {
		efiName, efiType := NameEFISystem, TypeEFISystem
		if b == SetB {
			efiName, efiType = NameEFIBackup, TypeEFIBackup
		}
		add(KindEFI, b, efiName, efiType, efi*scale)
		add(KindBoot, b, setName(KindBoot, b), TypeBoot, boot*scale)
		add(KindRoot, b, setName(KindRoot, b), TypeRoot, root*scale)
		add(KindHash, b, setName(KindHash, b), TypeHash, hash*scale)
		add(KindReserved, b, setName(KindReserved, b), TypeReserved, reserved*scale)
	}
	add(KindPrivate, "", NamePrivate, TypePrivate, private)

	l := &Layout{Options: opts}
	l.Options.Rand = nil
	switch opts.PartitionPlan {
	case Split:
		add(KindData, SetA, "", TypeData, dataAMiB)
		l.OS.Size = g * 1024 * MiB
		dataMiB := int64(opts.DataImageGiB) * 1024
		l.Data = &Disk{
			Size: dataMiB * MiB,
			Partitions: Partitions{{
				Number: 1, Kind: KindData, Set: SetB, Type: TypeData, GUID: DataPreferredGUID,
				Start: gptMiB * MiB, Size: (dataMiB - 2*gptMiB) * MiB,
			}},
		}
	case Unified:
		add(KindData, SetA, "", TypeData, int64(opts.DataImageGiB)*1024)
		l.OS.Size = (g + int64(opts.DataImageGiB)) * 1024 * MiB
	}
	l.OS.Partitions = parts

	// Fixed GUIDs for the data partitions, random ones for the rest.
	for _, d := range l.disks() {
		var err error
		if d.GUID, err = randomGUID(rnd); err != nil {
			return nil, fmt.Errorf("plan: disk GUID: %w", err)
		}
		for i := range d.Partitions {
			p := &d.Partitions[i]
			switch {
			case p.Kind == KindData && p.GUID != "":
			case p.Kind == KindData && opts.PartitionPlan == Split:
				p.GUID = DataFallbackGUID
			case p.Kind == KindData:
				p.GUID = DataPreferredGUID
			default:
				if p.GUID, err = randomGUID(rnd); err != nil {
					return nil, fmt.Errorf("plan: GUID of %s: %w", p.Role(), err)
				}
			}
			if p.Kind == KindBoot && p.Set == SetA {
				p.Attributes = BootAAttributes
			}
		}
		if err := d.check(); err != nil {
			return nil, fmt.Errorf("plan: %w", err)
		}
	}
	return l, nil
}

// disks returns the layout's disks, OS first.
func (l *Layout) disks() []*Disk {
	if l.Data != nil {
		return []*Disk{&l.OS, l.Data}
	}
	return []*Disk{&l.OS}
}

func setName(k Kind, s SetID) string { return namePrefix + string(k) + "-" + string(s) }

// check verifies that the partitions are MiB-aligned, in order, do not overlap
// and leave the first and last MiB of the disk to the GPT.
func (d *Disk) check() error {
	if d.Size%MiB != 0 {
		return fmt.Errorf("disk size %d is not a whole number of MiB", d.Size)
	}
	prevEnd := gptMiB * MiB
	for i, p := range d.Partitions {
		if p.Number != i+1 {
			return fmt.Errorf("partition %s has number %d, want %d", p.Role(), p.Number, i+1)
		}
		if p.Start%MiB != 0 || p.Size%MiB != 0 || p.Size <= 0 {
			return fmt.Errorf("partition %s (start %d, size %d) is not MiB-aligned", p.Role(), p.Start, p.Size)
		}
		if p.Start < prevEnd {
			return fmt.Errorf("partition %s starts at %d MiB, before the end of the previous one (%d MiB)", p.Role(), p.StartMiB(), prevEnd/MiB)
		}
		prevEnd = p.End()
	}
	if prevEnd > d.Size-gptMiB*MiB {
		return fmt.Errorf("partitions end at %d MiB, past the backup GPT of the %d MiB disk", prevEnd/MiB, d.Size/MiB)
	}
	return nil
}
