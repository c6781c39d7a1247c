package disklayout

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrOutOfRange is returned by Section's WriteAt and Writer for writes past
// the partition's end; nothing past the end is written.
var ErrOutOfRange = errors.New("write past the end of the partition")

// Section is one partition of a disk image or device: reads and writes at
// offsets relative to the partition's start, bounded by its size. It is how
// updog writes an update into the inactive set of a disk image.
type Section struct {
	f      *os.File
	owned  bool
	part   Partition
	off, n int64
}

// OpenPartition opens the partition numbered n of the image file or device
// at path, reading its GPT to find it. flag is os.O_RDONLY or os.O_RDWR.
// Close the section when done; for writes, Sync first if the data must be
// durable.
func OpenPartition(path string, n int, flag int) (*Section, error) {
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open partition %d: %w", n, err)
	}
	t, err := Read(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open partition %d: %w", n, err)
	}
	p, ok := t.parts.ByNumber(n)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("open partition %d of %s: no such entry", n, path)
	}
	s, err := NewSection(f, p)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// NewSection returns the section of f that partition p covers. f stays the
// caller's: Close on the section does not close it.
func NewSection(f *os.File, p Partition) (*Section, error) {
	size, _, err := geometry(f)
	if err != nil {
		return nil, fmt.Errorf("partition %s of %s: %w", p.Role(), f.Name(), err)
	}
	if p.Start < 0 || p.Size <= 0 || p.End() > size {
		return nil, fmt.Errorf("partition %s of %s (bytes %d–%d) is not inside the %d-byte disk", p.Role(), f.Name(), p.Start, p.End(), size)
	}
	return &Section{f: f, part: p, off: p.Start, n: p.Size}, nil
}

// Partition returns the partition the section covers.
func (s *Section) Partition() Partition { return s.part }

// Size is the partition's size in bytes.
func (s *Section) Size() int64 { return s.n }

// ReadAt reads from the partition at offset off; it returns io.EOF at the
// partition's end.
func (s *Section) ReadAt(b []byte, off int64) (int, error) {
	return io.NewSectionReader(s.f, s.off, s.n).ReadAt(b, off)
}

// WriteAt writes b at offset off of the partition. A write that would pass
// the partition's end writes nothing and returns ErrOutOfRange.
func (s *Section) WriteAt(b []byte, off int64) (int, error) {
	if off < 0 || off > s.n || int64(len(b)) > s.n-off {
		return 0, fmt.Errorf("partition %s: %d bytes at offset %d: %w (size %d)", s.part.Role(), len(b), off, ErrOutOfRange, s.n)
	}
	return s.f.WriteAt(b, s.off+off)
}

// Reader returns a reader of the whole partition from its start.
func (s *Section) Reader() *io.SectionReader { return io.NewSectionReader(s.f, s.off, s.n) }

// Writer returns a writer that writes the partition sequentially from its
// start, for io.Copy of an image stream; it fails with ErrOutOfRange
// instead of writing past the end.
func (s *Section) Writer() io.Writer { return &sectionWriter{s: s} }

type sectionWriter struct {
	s   *Section
	pos int64
}

func (w *sectionWriter) Write(b []byte) (int, error) {
	n, err := w.s.WriteAt(b, w.pos)
	w.pos += int64(n)
	return n, err
}

// Sync flushes the writes to the device.
func (s *Section) Sync() error {
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync partition %s of %s: %w", s.part.Role(), s.f.Name(), err)
	}
	return nil
}

// Close closes the file if OpenPartition opened it.
func (s *Section) Close() error {
	if !s.owned {
		return nil
	}
	return s.f.Close()
}
