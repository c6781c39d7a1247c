package disklayout

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sort"
)

// header is the part of a GPT header that Verify compares.
type header struct {
	myLBA, altLBA, firstUsable, lastUsable, entriesLBA uint64
	numEntries, entrySize, entriesCRC                  uint32
	diskGUID                                           string
}

// Verify checks the GPT of an image file or block device strictly, reading
// the raw sectors rather than trusting any fallback: a protective MBR; a
// valid primary header and entry array (signature, CRCs); a valid backup
// header at the last sector, mirroring the primary; a backup entry array
// identical to the primary one; used entries inside the usable area and not
// overlapping. It returns every problem found, joined.
func Verify(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verify GPT: %w", err)
	}
	defer f.Close()
	return VerifyFile(f)
}

// VerifyFile is Verify on an open file.
func VerifyFile(f *os.File) error {
	size, sector, err := geometry(f)
	if err != nil {
		return fmt.Errorf("verify GPT of %s: %w", f.Name(), err)
	}
	v := verifier{f: f, ss: int64(sector), lastLBA: uint64(size/int64(sector)) - 1}
	v.run()
	if len(v.errs) == 0 {
		return nil
	}
	return fmt.Errorf("verify GPT of %s: %w", f.Name(), errors.Join(v.errs...))
}

type verifier struct {
	f       *os.File
	ss      int64
	lastLBA uint64
	errs    []error
}

func (v *verifier) fail(format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf(format, args...))
}

func (v *verifier) read(lba uint64, n int64) ([]byte, error) {
	b := make([]byte, n)
	if _, err := v.f.ReadAt(b, int64(lba)*v.ss); err != nil {
		return nil, fmt.Errorf("reading %d bytes at LBA %d: %w", n, lba, err)
	}
	return b, nil
}

func (v *verifier) run() {
	mbr, err := v.read(0, v.ss)
	if err != nil {
		v.errs = append(v.errs, err)
		return
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa || mbr[446+4] != 0xee {
		v.fail("sector 0 is not a protective MBR")
	}
	primary, pEntries, err := v.copyAt(1, "primary")
	if err != nil {
		v.errs = append(v.errs, err)
		return
	}
	if primary.altLBA != v.lastLBA {
		v.fail("the backup GPT is at LBA %d, not at the disk's last LBA %d (the disk changed size after the table was written)", primary.altLBA, v.lastLBA)
	}
	if primary.altLBA > v.lastLBA {
		return
	}
	backup, bEntries, err := v.copyAt(primary.altLBA, "backup")
	if err != nil {
		v.errs = append(v.errs, err)
		return
	}
	if backup.altLBA != 1 {
		v.fail("backup header's alternate LBA is %d, want 1", backup.altLBA)
	}
	if backup.entriesLBA <= primary.lastUsable || backup.entriesLBA >= backup.myLBA {
		v.fail("backup entries at LBA %d are not between the usable area and the backup header", backup.entriesLBA)
	}
	p, b := primary, backup
	p.myLBA, p.altLBA, p.entriesLBA = 0, 0, 0
	b.myLBA, b.altLBA, b.entriesLBA = 0, 0, 0
	if p != b {
		v.fail("primary and backup headers differ: %+v vs %+v", primary, backup)
	}
	if !bytes.Equal(pEntries, bEntries) {
		v.fail("primary and backup partition entries differ")
	}
	v.checkEntries(primary, pEntries)
}

// copyAt reads and validates the header at lba and its entry array.
func (v *verifier) copyAt(lba uint64, which string) (header, []byte, error) {
	var h header
	b, err := v.read(lba, v.ss)
	if err != nil {
		return h, nil, fmt.Errorf("%s GPT: %w", which, err)
	}
	if string(b[0:8]) != "EFI PART" {
		return h, nil, fmt.Errorf("%s GPT at LBA %d: no EFI PART signature", which, lba)
	}
	hsize := binary.LittleEndian.Uint32(b[12:16])
	if hsize < 92 || int64(hsize) > v.ss {
		return h, nil, fmt.Errorf("%s GPT at LBA %d: header size %d", which, lba, hsize)
	}
	crc := binary.LittleEndian.Uint32(b[16:20])
	hb := append([]byte(nil), b[:hsize]...)
	clear(hb[16:20])
	if got := crc32.ChecksumIEEE(hb); got != crc {
		return h, nil, fmt.Errorf("%s GPT at LBA %d: header CRC is %08x, computed %08x", which, lba, crc, got)
	}
	h = header{
		myLBA:       binary.LittleEndian.Uint64(b[24:32]),
		altLBA:      binary.LittleEndian.Uint64(b[32:40]),
		firstUsable: binary.LittleEndian.Uint64(b[40:48]),
		lastUsable:  binary.LittleEndian.Uint64(b[48:56]),
		diskGUID:    guidFromDisk(b[56:72]),
		entriesLBA:  binary.LittleEndian.Uint64(b[72:80]),
		numEntries:  binary.LittleEndian.Uint32(b[80:84]),
		entrySize:   binary.LittleEndian.Uint32(b[84:88]),
		entriesCRC:  binary.LittleEndian.Uint32(b[88:92]),
	}
	if h.myLBA != lba {
		return h, nil, fmt.Errorf("%s GPT at LBA %d says it is at LBA %d", which, lba, h.myLBA)
	}
	if h.entrySize < 128 || h.numEntries == 0 || int64(h.numEntries)*int64(h.entrySize) > 4*MiB {
		return h, nil, fmt.Errorf("%s GPT at LBA %d: %d entries of %d bytes", which, lba, h.numEntries, h.entrySize)
	}
	entries, err := v.read(h.entriesLBA, int64(h.numEntries)*int64(h.entrySize))
	if err != nil {
		return h, nil, fmt.Errorf("%s GPT entries: %w", which, err)
	}
	if got := crc32.ChecksumIEEE(entries); got != h.entriesCRC {
		return h, nil, fmt.Errorf("%s GPT entries at LBA %d: CRC is %08x, computed %08x", which, h.entriesLBA, h.entriesCRC, got)
	}
	return h, entries, nil
}

// checkEntries checks that used entries lie in the usable area and do not
// overlap.
func (v *verifier) checkEntries(h header, entries []byte) {
	type span struct {
		n          int
		first, end uint64
	}
	var spans []span
	for i := 0; i < int(h.numEntries); i++ {
		e := entries[i*int(h.entrySize) : (i+1)*int(h.entrySize)]
		if bytes.Equal(e[0:16], make([]byte, 16)) {
			continue
		}
		first, last := binary.LittleEndian.Uint64(e[32:40]), binary.LittleEndian.Uint64(e[40:48])
		if first < h.firstUsable || last > h.lastUsable || last < first {
			v.fail("entry %d (LBA %d–%d) is outside the usable area %d–%d", i+1, first, last, h.firstUsable, h.lastUsable)
		}
		spans = append(spans, span{i + 1, first, last})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].first < spans[j].first })
	for i := 1; i < len(spans); i++ {
		if spans[i].first <= spans[i-1].end {
			v.fail("entries %d and %d overlap", spans[i-1].n, spans[i].n)
		}
	}
}
