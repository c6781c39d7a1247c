package disklayout

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// WriteFile writes disk's GPT to path: an image file, created if missing and
// extended to disk.Size if shorter, or a block device, which must be at least
// disk.Size. The backup GPT goes at the end of the file or device, so a
// device larger than the plan gets a table spanning all of it. The data
// areas of the partitions are not touched.
func WriteFile(path string, disk Disk) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("write GPT: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("write GPT: %w", err)
	}
	if fi.Mode().IsRegular() && fi.Size() < disk.Size {
		if err := f.Truncate(disk.Size); err != nil {
			return fmt.Errorf("write GPT: extending %s to %d bytes: %w", path, disk.Size, err)
		}
	}
	if err := Write(f, disk); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write GPT to %s: %w", path, err)
	}
	return nil
}

// Write writes disk's GPT to f (an image file or block device opened for
// reading and writing): a protective MBR (keeping any boot code in its first
// 446 bytes), then the backup and the primary partition entries and headers,
// each synced before the next (see go-diskfs Table.Write).
func Write(f *os.File, disk Disk) error {
	if err := disk.check(); err != nil {
		return fmt.Errorf("write GPT to %s: %w", f.Name(), err)
	}
	size, sector, err := geometry(f)
	if err != nil {
		return fmt.Errorf("write GPT to %s: %w", f.Name(), err)
	}
	if size < disk.Size {
		return fmt.Errorf("write GPT to %s: it is %d bytes, the layout needs %d", f.Name(), size, disk.Size)
	}
	ss := int64(sector)
	t := &gpt.Table{
		LogicalSectorSize:  sector,
		PhysicalSectorSize: sector,
		GUID:               disk.GUID,
		// The protective MBR is written below, with the values other
		// tools write (go-diskfs zeroes the CHS fields and overflows the
		// sector count past 2 TiB).
		ProtectiveMBR: false,
	}
	for _, p := range disk.Partitions {
		if p.Start%ss != 0 || p.Size%ss != 0 {
			return fmt.Errorf("write GPT to %s: partition %s is not aligned to %d-byte sectors", f.Name(), p.Role(), sector)
		}
		if len([]rune(p.Name)) > 36 {
			return fmt.Errorf("write GPT to %s: partition name %q is longer than 36 characters", f.Name(), p.Name)
		}
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index:      p.Number,
			Start:      uint64(p.Start / ss),
			End:        uint64((p.End())/ss - 1),
			Size:       uint64(p.Size),
			Type:       gpt.Type(strings.ToUpper(p.Type)),
			Name:       p.Name,
			GUID:       p.GUID,
			Attributes: p.Attributes,
		})
	}
	if err := writeProtectiveMBR(f, size, sector); err != nil {
		return fmt.Errorf("write GPT to %s: %w", f.Name(), err)
	}
	if err := t.Write(f, size); err != nil {
		return fmt.Errorf("write GPT to %s: %w", f.Name(), err)
	}
	return nil
}

// writeProtectiveMBR writes the partition records and signature of sector 0:
// one partition of type 0xEE from LBA 1 to the end of the disk (capped at
// 2^32−1 sectors), CHS fields as the UEFI specification asks. The boot code
// before offset 446 is left as it is.
func writeProtectiveMBR(f *os.File, size int64, sector int) error {
	b := make([]byte, 66)
	rec := b[:16]
	rec[0] = 0x00                               // not bootable
	rec[1], rec[2], rec[3] = 0x00, 0x02, 0x00   // CHS of LBA 1
	rec[4] = 0xee                               // GPT protective
	rec[5], rec[6], rec[7] = 0xff, 0xff, 0xff   // CHS not representable
	binary.LittleEndian.PutUint32(rec[8:12], 1) // first LBA
	sectors := size/int64(sector) - 1
	if sectors > 0xffffffff {
		sectors = 0xffffffff
	}
	binary.LittleEndian.PutUint32(rec[12:16], uint32(sectors))
	b[64], b[65] = 0x55, 0xaa
	if _, err := f.WriteAt(b, 446); err != nil {
		return fmt.Errorf("writing protective MBR: %w", err)
	}
	return nil
}

// Table is a GPT read from a disk.
type Table struct {
	// Path is the file or device the table was read from.
	Path string
	// Size is the disk's size in bytes and SectorSize its logical sector
	// size.
	Size       int64
	SectorSize int
	// GUID is the disk GUID.
	GUID string
	// RecoveredFromBackup is set when the primary GPT was invalid and the
	// table was read from the backup; writing the table back repairs the
	// primary.
	RecoveredFromBackup bool

	parts Partitions
	gpt   *gpt.Table
}

// Partitions returns a copy of the table's used entries in entry-number order,
// with Kind and Set filled in from their types.
func (t *Table) Partitions() Partitions {
	return append(Partitions(nil), t.parts...)
}

// SetAttributes sets the attribute field of entry number n. It is the one
// change WriteBack writes: everything else is written back as it was read.
func (t *Table) SetAttributes(n int, attrs uint64) error {
	for i := range t.parts {
		if t.parts[i].Number != n {
			continue
		}
		for _, gp := range t.gpt.Partitions {
			if gp.Index == n {
				gp.Attributes = attrs
				t.parts[i].Attributes = attrs
				return nil
			}
		}
	}
	return fmt.Errorf("%s: no partition entry %d", t.Path, n)
}

// ReadFile reads the GPT of an image file or block device.
func ReadFile(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read GPT: %w", err)
	}
	defer f.Close()
	return Read(f)
}

// Read reads the GPT of f. If the primary GPT is invalid (bad signature or
// CRC), the backup is used and RecoveredFromBackup is set.
func Read(f *os.File) (*Table, error) {
	size, sector, err := geometry(f)
	if err != nil {
		return nil, fmt.Errorf("read GPT of %s: %w", f.Name(), err)
	}
	gt, err := gpt.Read(f, sector, sector)
	if err != nil {
		return nil, fmt.Errorf("read GPT of %s: %w", f.Name(), err)
	}
	t := &Table{Path: f.Name(), Size: size, SectorSize: sector, GUID: gt.GUID, RecoveredFromBackup: gt.RecoveredFromBackup, gpt: gt}
	ss := int64(sector)
	for _, gp := range gt.Partitions {
		t.parts = append(t.parts, Partition{
			Number:     gp.Index,
			Name:       gp.Name,
			Type:       strings.ToUpper(string(gp.Type)),
			GUID:       strings.ToUpper(gp.GUID),
			Start:      int64(gp.Start) * ss,
			Size:       (int64(gp.End) - int64(gp.Start) + 1) * ss,
			Attributes: gp.Attributes,
		})
	}
	classify(t.parts)
	return t, nil
}

// WriteBack writes the table, with any attributes changed by SetAttributes, to
// f: the backup entries and header, then the primary entries and header, each
// synced to the device before the next write. The protective MBR is not
// rewritten. f must be the disk the table was read from.
//
// The changed attributes are all in the entry array, covered by one CRC in
// each header. A crash while writing the backup leaves the backup invalid
// and the primary old; a crash while writing the primary leaves the primary
// invalid and the backup new. Either way a reader that validates CRCs and
// falls back to the other copy (GRUB, the kernel, Read) sees the whole old
// or the whole new table, never a mix; between the two halves, when both
// copies are valid but differ, readers use the primary (old). Writing again
// makes the copies equal. What this cannot survive: a device that
// acknowledges a flush it has not done, or damage to both copies at once.
func (t *Table) WriteBack(f *os.File) error {
	size, sector, err := geometry(f)
	if err != nil {
		return fmt.Errorf("write GPT to %s: %w", f.Name(), err)
	}
	if sector != t.SectorSize {
		return fmt.Errorf("write GPT to %s: sector size is %d, the table was read with %d", f.Name(), sector, t.SectorSize)
	}
	t.gpt.ProtectiveMBR = false
	if err := t.gpt.Write(f, size); err != nil {
		return fmt.Errorf("write GPT to %s: %w", f.Name(), err)
	}
	t.RecoveredFromBackup = false
	return nil
}

// geometry returns the size in bytes and the logical sector size of an image
// file (512) or block device.
func geometry(f *os.File) (size int64, sector int, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	sector = 512
	if fi.Mode()&os.ModeDevice != 0 {
		if sector, err = deviceSectorSize(f); err != nil {
			return 0, 0, fmt.Errorf("logical sector size: %w", err)
		}
	}
	if size, err = f.Seek(0, io.SeekEnd); err != nil {
		return 0, 0, fmt.Errorf("disk size: %w", err)
	}
	if size < 3*MiB {
		return 0, 0, errors.New("disk is smaller than 3 MiB")
	}
	return size, sector, nil
}
