package localfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// PendingLabel is the filesystem label mkfs.ext4 writes. It is replaced by
// the final label only once the filesystem is complete and synced.
const PendingLabel = "GANTRY-PENDING"

// Offsets and values of the ext4 superblock (Documentation/filesystems/ext4
// in the kernel), relative to the superblock's start.
const (
	sbOffset = 1024 // the primary superblock's byte offset in the filesystem
	sbSize   = 1024

	sbBlocksCountLo   = 0x04
	sbFirstDataBlock  = 0x14
	sbLogBlockSize    = 0x18
	sbBlocksPerGroup  = 0x20
	sbMagic           = 0x38
	sbBlockGroupNr    = 0x5A
	sbFeatureCompat   = 0x5C
	sbFeatureIncompat = 0x60
	sbFeatureROCompat = 0x64
	sbUUID            = 0x68
	sbVolumeName      = 0x78
	sbBlocksCountHi   = 0x150
	sbBackupBGs       = 0x24C
	sbChecksum        = 0x3FC

	ext4Magic = 0xEF53

	compatSparseSuper2    = 0x200
	incompat64Bit         = 0x80
	roCompatSparseSuper   = 0x1
	roCompatMetadataCsum  = 0x400
	labelLen              = 16
	maxLogBlockSize       = 6 // 64 KiB blocks
	standardGroupsPerBase = 8 // blocks per group = 8 × block size by default
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// superblock is one 1024-byte ext4 superblock as read from the disk.
type superblock []byte

func (s superblock) u16(off int) uint32 { return uint32(binary.LittleEndian.Uint16(s[off:])) }
func (s superblock) u32(off int) uint32 { return binary.LittleEndian.Uint32(s[off:]) }

func (s superblock) hasMagic() bool { return s.u16(sbMagic) == ext4Magic }

func (s superblock) label() string {
	return string(bytes.TrimRight(s[sbVolumeName:sbVolumeName+labelLen], "\x00"))
}

func (s superblock) setLabel(l string) {
	b := s[sbVolumeName : sbVolumeName+labelLen]
	clear(b)
	copy(b, l)
}

func (s superblock) hasChecksum() bool { return s.u32(sbFeatureROCompat)&roCompatMetadataCsum != 0 }

// checksum is the superblock checksum as ext4 stores it: crc32c seeded with
// ~0 over the bytes before the checksum field, without the final inversion.
func (s superblock) checksum() uint32 {
	return ^crc32.Checksum(s[:sbChecksum], castagnoli)
}

// checksumOK reports whether the stored checksum matches; a filesystem
// without metadata_csum has none to check.
func (s superblock) checksumOK() bool {
	return !s.hasChecksum() || s.u32(sbChecksum) == s.checksum()
}

func (s superblock) updateChecksum() {
	if s.hasChecksum() {
		binary.LittleEndian.PutUint32(s[sbChecksum:], s.checksum())
	}
}

func (s superblock) blockSize() int64 { return 1024 << s.u32(sbLogBlockSize) }

func (s superblock) blocksCount() int64 {
	n := int64(s.u32(sbBlocksCountLo))
	if s.u32(sbFeatureIncompat)&incompat64Bit != 0 {
		n |= int64(s.u32(sbBlocksCountHi)) << 32
	}
	return n
}

// geometryOK checks the fields the backup locations are computed from.
func (s superblock) geometryOK() bool {
	return s.u32(sbLogBlockSize) <= maxLogBlockSize && s.u32(sbBlocksPerGroup) > 0 && s.blocksCount() > 0
}

// backupGroups returns the block groups that hold a backup superblock:
// with sparse_super2 the (up to) two named in the superblock, with
// sparse_super group 1 and the powers of 3, 5 and 7, otherwise every group
// after the first.
func (s superblock) backupGroups() []int64 {
	groups := (s.blocksCount() - int64(s.u32(sbFirstDataBlock)) + int64(s.u32(sbBlocksPerGroup)) - 1) / int64(s.u32(sbBlocksPerGroup))
	var out []int64
	switch {
	case s.u32(sbFeatureCompat)&compatSparseSuper2 != 0:
		for _, off := range []int{sbBackupBGs, sbBackupBGs + 4} {
			if g := int64(s.u32(off)); g > 0 && g < groups {
				out = append(out, g)
			}
		}
	case s.u32(sbFeatureROCompat)&roCompatSparseSuper != 0:
		seen := map[int64]bool{}
		for _, base := range []int64{3, 5, 7} {
			for g := int64(1); g < groups; g *= base {
				if !seen[g] {
					seen[g] = true
					out = append(out, g)
				}
			}
		}
	default:
		for g := int64(1); g < groups; g++ {
			out = append(out, g)
		}
	}
	return out
}

// backupOffset is the byte offset, in the filesystem, of group g's backup
// superblock: the start of the group's first block.
func (s superblock) backupOffset(g int64) int64 {
	return (int64(s.u32(sbFirstDataBlock)) + g*int64(s.u32(sbBlocksPerGroup))) * s.blockSize()
}

// State is what a partition holds, as far as preparing it is concerned.
type State int

const (
	// StateEmpty: no ext4 superblock (zeros, garbage, or an mkfs that had
	// only just started).
	StateEmpty State = iota
	// StatePending: an ext4 superblock without the final label: mkfs ran,
	// maybe to the end, but the label was never committed (or its write
	// was torn).
	StatePending
	// StateReady: a complete Gantry filesystem. Never formatted again.
	StateReady
)

func (s State) String() string {
	switch s {
	case StateEmpty:
		return "empty"
	case StatePending:
		return "pending"
	case StateReady:
		return "ready"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// ErrDamaged means a partition holds what was a complete filesystem but its
// primary superblock is damaged. It is never formatted; e2fsck can repair it.
var ErrDamaged = errors.New("damaged filesystem")

func readSuperblock(r io.ReaderAt, off int64) (superblock, error) {
	b := make(superblock, sbSize)
	if _, err := r.ReadAt(b, off); err != nil {
		return nil, err
	}
	return b, nil
}

// Inspect classifies the filesystem on a partition of size bytes read
// through r (offsets relative to the partition's start), whose final label
// is label. It returns ErrDamaged (wrapped, with the reason) for a
// filesystem that must be neither formatted nor mounted.
func Inspect(r io.ReaderAt, size int64, label string) (State, error) {
	sb, err := readSuperblock(r, sbOffset)
	if err != nil {
		return 0, fmt.Errorf("read superblock: %w", err)
	}
	if !sb.hasMagic() {
		if l, ok := backupLabel(r, size); ok && l == label {
			return 0, fmt.Errorf("%w: no primary superblock, but the backup superblock is labelled %s (run e2fsck)", ErrDamaged, label)
		}
		return StateEmpty, nil
	}
	if sb.label() != label {
		return StatePending, nil
	}
	if !sb.checksumOK() {
		// The label and the checksum are in different 512-byte sectors:
		// a torn write of the label leaves the new label with the old
		// checksum, which is still right for the pending label.
		torn := append(superblock(nil), sb...)
		torn.setLabel(PendingLabel)
		if torn.checksumOK() {
			return StatePending, nil
		}
		return 0, fmt.Errorf("%w: the superblock labelled %s fails its checksum (run e2fsck)", ErrDamaged, label)
	}
	if !sb.geometryOK() {
		return 0, fmt.Errorf("%w: the superblock labelled %s has an impossible geometry", ErrDamaged, label)
	}
	if fs := sb.blocksCount() * sb.blockSize(); fs > size {
		return 0, fmt.Errorf("%w: the filesystem labelled %s is %d bytes, larger than its %d-byte partition", ErrDamaged, label, fs, size)
	}
	return StateReady, nil
}

// backupLabel looks for group 1's backup superblock where mkfs.ext4 puts it
// by default (blocks per group = 8 × block size) and returns its label.
func backupLabel(r io.ReaderAt, size int64) (string, bool) {
	for _, bs := range []int64{4096, 1024, 2048} {
		off := standardGroupsPerBase * bs * bs // group 1's first block
		if bs == 1024 {
			off += bs // first data block is 1 with 1 KiB blocks
		}
		if off+sbSize > size {
			continue
		}
		sb, err := readSuperblock(r, off)
		if err != nil || !sb.hasMagic() || sb.u16(sbBlockGroupNr) != 1 || !sb.checksumOK() {
			continue
		}
		return sb.label(), true
	}
	return "", false
}

// commitLabel writes label into the filesystem's primary superblock, syncs,
// then writes it into every backup superblock and syncs again. The primary
// write is the commit point: Inspect reads only the primary. The backups
// follow so that e2fsck, if it ever restores the primary from a backup,
// restores the final label too. rw's offsets are relative to the
// partition's start.
func commitLabel(rw readWriterAt, label string) error {
	if len(label) > labelLen {
		return fmt.Errorf("label %q is longer than %d bytes", label, labelLen)
	}
	sb, err := readSuperblock(rw, sbOffset)
	if err != nil {
		return fmt.Errorf("read superblock: %w", err)
	}
	if !sb.hasMagic() || !sb.geometryOK() || !sb.checksumOK() {
		return errors.New("no valid ext4 superblock after mkfs")
	}
	uuid := append([]byte(nil), sb[sbUUID:sbUUID+16]...)
	sb.setLabel(label)
	sb.updateChecksum()
	if _, err := rw.WriteAt(sb, sbOffset); err != nil {
		return fmt.Errorf("write superblock: %w", err)
	}
	if err := rw.Sync(); err != nil {
		return fmt.Errorf("write superblock: %w", err)
	}
	return labelBackups(rw, sb, uuid, label)
}

// labelBackups writes label into every backup superblock of the filesystem
// whose primary superblock is sb; backups already labelled are left alone.
// A backup that is missing or belongs to another filesystem (another UUID)
// is an error.
func labelBackups(rw readWriterAt, sb superblock, uuid []byte, label string) error {
	changed := false
	for _, g := range sb.backupGroups() {
		off := sb.backupOffset(g)
		b, err := readSuperblock(rw, off)
		if err != nil {
			return fmt.Errorf("read backup superblock of group %d: %w", g, err)
		}
		if !b.hasMagic() || !bytes.Equal(b[sbUUID:sbUUID+16], uuid) {
			return fmt.Errorf("backup superblock of group %d (byte %d) is missing or belongs to another filesystem", g, off)
		}
		if b.label() == label {
			continue
		}
		b.setLabel(label)
		b.updateChecksum()
		if _, err := rw.WriteAt(b, off); err != nil {
			return fmt.Errorf("write backup superblock of group %d: %w", g, err)
		}
		changed = true
	}
	if changed {
		if err := rw.Sync(); err != nil {
			return fmt.Errorf("write backup superblocks: %w", err)
		}
	}
	return nil
}

// readWriterAt is a partition opened for reading and writing.
type readWriterAt interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}
