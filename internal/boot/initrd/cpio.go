package initrd

import (
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// newc cpio, the format the kernel unpacks an initramfs from: a 110-byte
// ASCII header ("070701" and thirteen 8-digit hex fields), the NUL-terminated
// name padded to 4 bytes, the data padded to 4 bytes; the archive ends with
// an entry named TRAILER!!!.
const (
	cpioMagic   = "070701"
	cpioHdrSize = 110
	cpioTrailer = "TRAILER!!!"
)

// File modes of cpio entries (the S_IF* bits of st_mode).
const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
	modeTypeMsk = 0o170000
)

// entry is one archive member. Name is relative ("init", "lib/x.ko"), with
// no leading slash, as the kernel expects.
type entry struct {
	Name         string
	Mode         uint32 // type and permission bits
	Data         []byte // file contents or symlink target
	RdevMajor    uint32
	RdevMinor    uint32
	Mtime        int64
	UID, GID     uint32
	inode, nlink uint32
}

// archive collects entries and writes them sorted by name, each parent
// directory before its children, with inodes numbered in that order, so the
// same inputs always give the same bytes.
type archive struct {
	entries map[string]*entry
}

func newArchive() *archive { return &archive{entries: map[string]*entry{}} }

func cleanName(name string) (string, error) {
	n := strings.TrimPrefix(path.Clean("/"+name), "/")
	if n == "" || n == "." {
		return "", fmt.Errorf("invalid archive path %q", name)
	}
	return n, nil
}

// add adds e, creating missing parent directories (mode 0755). Adding a
// name twice is an error unless both are directories.
func (a *archive) add(e entry) error {
	n, err := cleanName(e.Name)
	if err != nil {
		return err
	}
	e.Name = n
	if dir := path.Dir(n); dir != "." {
		if err := a.add(entry{Name: dir, Mode: modeDir | 0o755}); err != nil {
			return err
		}
	}
	if old, ok := a.entries[n]; ok {
		if old.Mode&modeTypeMsk == modeDir && e.Mode&modeTypeMsk == modeDir {
			return nil
		}
		return fmt.Errorf("duplicate archive path %q", n)
	}
	a.entries[n] = &e
	return nil
}

// writeTo writes the archive with every entry's mtime set to mtime and its
// owner to root.
func (a *archive) writeTo(w io.Writer, mtime int64) error {
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	// Component-wise order puts every directory before its contents.
	sort.Slice(names, func(i, j int) bool { return lessPath(names[i], names[j]) })
	cw := &countWriter{w: w}
	for i, n := range names {
		e := *a.entries[n]
		e.inode = uint32(i + 1)
		e.nlink = 1
		if e.Mode&modeTypeMsk == modeDir {
			e.nlink = 2
		}
		e.Mtime = mtime
		if err := writeEntry(cw, e); err != nil {
			return err
		}
	}
	return writeEntry(cw, entry{Name: cpioTrailer, nlink: 1})
}

// lessPath orders paths component by component.
func lessPath(a, b string) bool {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] != bs[i] {
			return as[i] < bs[i]
		}
	}
	return len(as) < len(bs)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

func pad4(n int64) int64 { return (4 - n%4) % 4 }

func writeEntry(w *countWriter, e entry) error {
	hdr := fmt.Sprintf("%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		cpioMagic, e.inode, e.Mode, e.UID, e.GID, e.nlink, uint32(e.Mtime), len(e.Data),
		0, 0, e.RdevMajor, e.RdevMinor, len(e.Name)+1, 0)
	buf := make([]byte, 0, cpioHdrSize+len(e.Name)+4)
	buf = append(buf, hdr...)
	buf = append(buf, e.Name...)
	buf = append(buf, 0)
	buf = append(buf, make([]byte, pad4(w.n+int64(len(buf))))...)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write cpio entry %s: %w", e.Name, err)
	}
	if len(e.Data) > 0 {
		if _, err := w.Write(e.Data); err != nil {
			return fmt.Errorf("write cpio entry %s: %w", e.Name, err)
		}
		if _, err := w.Write(make([]byte, pad4(w.n))); err != nil {
			return fmt.Errorf("write cpio entry %s: %w", e.Name, err)
		}
	}
	return nil
}
