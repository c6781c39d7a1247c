// Package disklayout owns Gantry's GPT partition layout: the partition type
// GUIDs, names and sizes of the OS disk (and of the separate data disk in the
// split plan), the initial boot attributes, writing that layout as a GPT to an
// image file or block device, reading a GPT back, finding the A/B partition
// sets and the private partition in it, and opening one partition of an image
// as a bounded section for reading or writing.
//
// The image builder calls Plan and WriteFile; signpost and updog call Read and
// the set helpers. The layout is Bottlerocket's (twoliter's partyplanner)
// with Gantry names. The type GUIDs are Bottlerocket's, unchanged: GRUB's
// gptprio.next and the dm-verity table find the boot partition by its type
// GUID and the root and hash partitions by their offset from it, so changing
// the GUIDs would mean changing the boot chain.
package disklayout

import (
	"fmt"
	"strings"
)

// MiB is one mebibyte, the layout's unit: every partition starts and ends on a
// MiB boundary.
const MiB int64 = 1 << 20

// Partition type GUIDs (canonical text form, upper case). go-diskfs stores
// them on disk in the GPT's mixed-endian form: the first three fields
// little-endian, the last two big-endian, so TypeBIOSBoot is the ASCII bytes
// "Hah!IdontNeedEFI" on disk and TypeBoot is "hack the planet!".
const (
	TypeBIOSBoot  = "21686148-6449-6E6F-744E-656564454649"
	TypeEFISystem = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	// TypeEFIBackup is bank B's EFI placeholder; nothing writes to it.
	TypeEFIBackup = "B39CE39C-0A00-B4AB-2D11-F18F8237A21C"
	TypeBoot      = "6B636168-7420-6568-2070-6C616E657421"
	TypeRoot      = "5526016A-1A97-4EA4-B39A-B7C8C6CA4502"
	TypeHash      = "598F10AF-C955-4456-6A99-7720068A6CEA"
	TypeReserved  = "0C5D99A5-D331-4147-BAEF-08E2B855BDC9"
	TypePrivate   = "440408BB-EB0B-4328-A6E5-A29038FAD706"
	TypeData      = "626F7474-6C65-6474-6861-726D61726B73"
)

// Fixed unique GUIDs of the data partitions. Boot-time discovery labels the
// preferred one GANTRY-DATA when it exists and falls back to the other.
const (
	DataPreferredGUID = "5B94E8DF-28B8-485C-9D19-362263B5944C"
	DataFallbackGUID  = "69040874-417D-4E26-A764-7885F22007EA"
)

// Partition names (GPT labels).
const (
	NameBIOSBoot  = "BIOS-BOOT"
	NameEFISystem = "EFI-SYSTEM"
	NameEFIBackup = "EFI-BACKUP"
	NamePrivate   = "GANTRY-PRIVATE"
	// NameData is the label boot-time discovery gives the data partition it
	// chose. The layout leaves both data partitions unlabelled, as
	// Bottlerocket does, so that the label is unique and its presence means
	// "already chosen".
	NameData = "GANTRY-DATA"
	// namePrefix starts the names of the A/B partitions: GANTRY-BOOT-A etc.
	namePrefix = "GANTRY-"
)

// Kind is what a partition is for.
type Kind string

// The partition kinds of the layout. KindOther is any partition whose type
// GUID the layout does not know.
const (
	KindBIOS     Kind = "BIOS"
	KindEFI      Kind = "EFI"
	KindBoot     Kind = "BOOT"
	KindRoot     Kind = "ROOT"
	KindHash     Kind = "HASH"
	KindReserved Kind = "RESERVED"
	KindPrivate  Kind = "PRIVATE"
	KindData     Kind = "DATA"
	KindOther    Kind = ""
)

// SetID names a partition set (bank): A or B.
type SetID string

// The two partition sets.
const (
	SetA SetID = "A"
	SetB SetID = "B"
)

// Other returns the other set.
func (s SetID) Other() SetID {
	if s == SetA {
		return SetB
	}
	return SetA
}

// ParseSetID accepts A or B in either case.
func ParseSetID(s string) (SetID, error) {
	switch strings.ToUpper(s) {
	case "A":
		return SetA, nil
	case "B":
		return SetB, nil
	}
	return "", fmt.Errorf("invalid partition set %q (want A or B)", s)
}

func (s SetID) index() int {
	if s == SetB {
		return 1
	}
	return 0
}

// Partition is one GPT entry, planned or read from a disk.
type Partition struct {
	// Number is the 1-based entry number in the partition array (the N of
	// /dev/sdaN).
	Number int `json:"number"`
	// Kind and Set are what the layout says this partition is; Set is empty
	// for BIOS and PRIVATE.
	Kind Kind  `json:"kind"`
	Set  SetID `json:"set,omitempty"`
	// Name is the GPT label (empty for data partitions at build time).
	Name string `json:"name"`
	// Type and GUID are the type GUID and unique partition GUID, upper case.
	Type string `json:"type"`
	GUID string `json:"guid"`
	// Start and Size are in bytes.
	Start int64 `json:"start"`
	Size  int64 `json:"size"`
	// Attributes is the 64-bit attribute field; bits 48–63 are type-specific
	// (the gptprio bits on BOOT entries, see signpost).
	Attributes uint64 `json:"attributes"`
}

// Role is Kind and Set together, e.g. "BOOT-A", "PRIVATE".
func (p Partition) Role() string {
	if p.Set == "" {
		return string(p.Kind)
	}
	return string(p.Kind) + "-" + string(p.Set)
}

// StartMiB is Start in MiB (rounded down).
func (p Partition) StartMiB() int64 { return p.Start / MiB }

// SizeMiB is Size in MiB (rounded down).
func (p Partition) SizeMiB() int64 { return p.Size / MiB }

// End is the byte offset just past the partition.
func (p Partition) End() int64 { return p.Start + p.Size }

// Partitions is a partition table's entries in entry-number order.
type Partitions []Partition

// ByNumber returns the partition with entry number n.
func (ps Partitions) ByNumber(n int) (Partition, bool) {
	for _, p := range ps {
		if p.Number == n {
			return p, true
		}
	}
	return Partition{}, false
}

// ByName returns the first partition labelled name.
func (ps Partitions) ByName(name string) (Partition, bool) {
	for _, p := range ps {
		if p.Name == name {
			return p, true
		}
	}
	return Partition{}, false
}

// ByRole returns the partition whose Role is role, e.g. "ROOT-B".
func (ps Partitions) ByRole(role string) (Partition, bool) {
	for _, p := range ps {
		if p.Kind != KindOther && p.Role() == role {
			return p, true
		}
	}
	return Partition{}, false
}

// OfType returns the partitions of a type GUID, in table order.
func (ps Partitions) OfType(typeGUID string) Partitions {
	var out Partitions
	for _, p := range ps {
		if strings.EqualFold(p.Type, typeGUID) {
			out = append(out, p)
		}
	}
	return out
}

// PartitionSet is one bank's boot, root and hash partitions: the triple that
// an update writes together and GRUB boots together.
type PartitionSet struct {
	ID   SetID     `json:"id"`
	Boot Partition `json:"boot"`
	Root Partition `json:"root"`
	Hash Partition `json:"hash"`
}

// Contains reports whether entry number n is one of the set's partitions.
func (s PartitionSet) Contains(n int) bool {
	return s.Boot.Number == n || s.Root.Number == n || s.Hash.Number == n
}

// Sets returns the partition sets as signpost and GRUB see them: set A is the
// first BOOT, ROOT and HASH entries in table order, set B the second ones.
// A disk with one BOOT entry has one set. The dm-verity table GRUB boots
// finds ROOT and HASH at entry numbers BOOT+1 and BOOT+2, so Sets refuses a
// table where they are elsewhere.
func (ps Partitions) Sets() ([]PartitionSet, error) {
	boots, roots, hashes := ps.OfType(TypeBoot), ps.OfType(TypeRoot), ps.OfType(TypeHash)
	if len(boots) == 0 {
		return nil, fmt.Errorf("no %s partition (type %s)", namePrefix+"BOOT", TypeBoot)
	}
	if len(boots) > 2 {
		return nil, fmt.Errorf("%d BOOT partitions; a disk has one or two partition sets", len(boots))
	}
	var sets []PartitionSet
	for i, id := range []SetID{SetA, SetB}[:len(boots)] {
		if i >= len(roots) {
			return nil, fmt.Errorf("set %s has no ROOT partition (type %s)", id, TypeRoot)
		}
		if i >= len(hashes) {
			return nil, fmt.Errorf("set %s has no HASH partition (type %s)", id, TypeHash)
		}
		s := PartitionSet{ID: id, Boot: boots[i], Root: roots[i], Hash: hashes[i]}
		if s.Root.Number != s.Boot.Number+1 || s.Hash.Number != s.Boot.Number+2 {
			return nil, fmt.Errorf("set %s: BOOT is entry %d but ROOT is %d and HASH %d; the boot chain needs them at BOOT+1 and BOOT+2",
				id, s.Boot.Number, s.Root.Number, s.Hash.Number)
		}
		sets = append(sets, s)
	}
	return sets, nil
}

// Set returns set id.
func (ps Partitions) Set(id SetID) (PartitionSet, error) {
	sets, err := ps.Sets()
	if err != nil {
		return PartitionSet{}, err
	}
	if id.index() >= len(sets) {
		return PartitionSet{}, fmt.Errorf("no partition set %s: the disk has a single set", id)
	}
	return sets[id.index()], nil
}

// Private returns the PRIVATE partition, which every OS disk has exactly once.
func (ps Partitions) Private() (Partition, error) {
	privs := ps.OfType(TypePrivate)
	switch len(privs) {
	case 1:
		return privs[0], nil
	case 0:
		return Partition{}, fmt.Errorf("no %s partition (type %s)", NamePrivate, TypePrivate)
	}
	return Partition{}, fmt.Errorf("%d PRIVATE partitions; want exactly one", len(privs))
}

// classify fills in Kind and Set of partitions read from a disk: from the type
// GUID, and for the A/B kinds from the order of appearance (first A, second
// B). Data partitions are told apart by their fixed unique GUIDs: the
// fallback GUID is DATA-A; the preferred one is DATA-A on a disk that also
// holds the OS (unified plan) and DATA-B on a disk of its own (split plan).
func classify(ps Partitions) {
	hasOS := len(ps.OfType(TypeBoot)) > 0
	seen := map[Kind]int{}
	ab := func(k Kind) SetID {
		n := seen[k]
		seen[k]++
		switch n {
		case 0:
			return SetA
		case 1:
			return SetB
		}
		return ""
	}
	for i := range ps {
		p := &ps[i]
		switch strings.ToUpper(p.Type) {
		case TypeBIOSBoot:
			p.Kind = KindBIOS
		case TypeEFISystem:
			p.Kind, p.Set = KindEFI, SetA
		case TypeEFIBackup:
			p.Kind, p.Set = KindEFI, SetB
		case TypeBoot:
			p.Kind, p.Set = KindBoot, ab(KindBoot)
		case TypeRoot:
			p.Kind, p.Set = KindRoot, ab(KindRoot)
		case TypeHash:
			p.Kind, p.Set = KindHash, ab(KindHash)
		case TypeReserved:
			p.Kind, p.Set = KindReserved, ab(KindReserved)
		case TypePrivate:
			p.Kind = KindPrivate
		case TypeData:
			p.Kind = KindData
			switch {
			case strings.EqualFold(p.GUID, DataFallbackGUID):
				p.Set = SetA
			case strings.EqualFold(p.GUID, DataPreferredGUID) && hasOS:
				p.Set = SetA
			case strings.EqualFold(p.GUID, DataPreferredGUID):
				p.Set = SetB
			default:
				p.Set = ab(KindData)
			}
		default:
			p.Kind = KindOther
		}
	}
}
