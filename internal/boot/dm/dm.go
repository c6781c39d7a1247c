// Package dm is a minimal device-mapper client: the raw DM ioctls on
// /dev/mapper/control (create a device, load its table, resume it, query its
// status, remove it), and the dm-verity target's table line.
//
// It needs no libdevmapper and no udev: the device node is /dev/dm-<minor>,
// which devtmpfs creates, not a /dev/mapper/<name> link (udev makes those).
// The initramfs (package initrd, cmd/gantry-init) uses it to open the
// verified root filesystem.
//
// The encoding of the ioctl structures (struct dm_ioctl, 312 bytes, and
// struct dm_target_spec, 40 bytes, from linux/dm-ioctl.h) is portable Go and
// unit-tested; the ioctls themselves are Linux-only.
package dm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sizes and limits from linux/dm-ioctl.h.
const (
	headerSize     = 312 // sizeof(struct dm_ioctl)
	targetSpecSize = 40  // sizeof(struct dm_target_spec)
	nameLen        = 128 // DM_NAME_LEN, including the NUL
	uuidLen        = 129 // DM_UUID_LEN, including the NUL
	typeNameLen    = 16  // DM_MAX_TYPE_NAME, including the NUL

	// VersionMajor is the ioctl interface's major version; the kernel
	// refuses any other. The minor and patch we ask for are the oldest
	// that have everything used here.
	VersionMajor = 4
	versionMinor = 0
	versionPatch = 0
)

// Ioctl command numbers (the nr of _IOWR(0xfd, nr, struct dm_ioctl)).
const (
	cmdVersion     = 0
	cmdDevCreate   = 3
	cmdDevRemove   = 4
	cmdDevSuspend  = 6
	cmdDevStatus   = 7
	cmdTableLoad   = 9
	cmdTableStatus = 12
)

// Flags of struct dm_ioctl.
const (
	FlagReadOnly   uint32 = 1 << 0 // DM_READONLY_FLAG
	FlagSuspend    uint32 = 1 << 1 // DM_SUSPEND_FLAG
	FlagActive     uint32 = 1 << 5 // DM_ACTIVE_PRESENT_FLAG
	FlagStatusTbl  uint32 = 1 << 4 // DM_STATUS_TABLE_FLAG: TABLE_STATUS returns the table, not the status
	FlagBufferFull uint32 = 1 << 8 // DM_BUFFER_FULL_FLAG: the reply did not fit
)

// ioctlNumber is _IOWR(0xfd, nr, struct dm_ioctl) on Linux (the generic
// ioctl encoding used by x86, arm64 and most others).
func ioctlNumber(nr uint) uint {
	const iocWrite, iocRead = 1, 2
	return (iocRead|iocWrite)<<30 | headerSize<<16 | 0xfd<<8 | nr
}

// Target is one line of a device-mapper table.
type Target struct {
	// Start and Length are in 512-byte sectors.
	Start, Length uint64
	// Type is the target type, e.g. "verity", "linear".
	Type string
	// Params is the target's parameter string.
	Params string
}

// String is the target in dmsetup's table syntax.
func (t Target) String() string {
	return fmt.Sprintf("%d %d %s %s", t.Start, t.Length, t.Type, t.Params)
}

// header is struct dm_ioctl without its trailing data.
type header struct {
	Version     [3]uint32
	DataSize    uint32
	DataStart   uint32
	TargetCount uint32
	OpenCount   int32
	Flags       uint32
	EventNr     uint32
	Dev         uint64
	Name        string
	UUID        string
}

// encode returns the struct dm_ioctl for h followed by payload, with
// DataStart = 312 and DataSize = max(312+len(payload), bufSize).
func (h header) encode(payload []byte, bufSize int) ([]byte, error) {
	if len(h.Name) >= nameLen {
		return nil, fmt.Errorf("device name %q longer than %d bytes", h.Name, nameLen-1)
	}
	if len(h.UUID) >= uuidLen {
		return nil, fmt.Errorf("device UUID %q longer than %d bytes", h.UUID, uuidLen-1)
	}
	if strings.ContainsRune(h.Name, 0) || strings.ContainsRune(h.UUID, 0) || strings.ContainsRune(h.Name, '/') {
		return nil, fmt.Errorf("device name %q or UUID %q contains NUL or /", h.Name, h.UUID)
	}
	size := max(headerSize+len(payload), bufSize)
	b := make([]byte, size)
	le := binary.LittleEndian
	for i, v := range h.Version {
		le.PutUint32(b[4*i:], v)
	}
	le.PutUint32(b[12:], uint32(size))
	le.PutUint32(b[16:], headerSize)
	le.PutUint32(b[20:], h.TargetCount)
	le.PutUint32(b[24:], uint32(h.OpenCount))
	le.PutUint32(b[28:], h.Flags)
	le.PutUint32(b[32:], h.EventNr)
	// b[36:40] is padding.
	le.PutUint64(b[40:], h.Dev)
	copy(b[48:48+nameLen], h.Name)
	copy(b[176:176+uuidLen], h.UUID)
	copy(b[headerSize:], payload)
	return b, nil
}

func decodeHeader(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, fmt.Errorf("dm reply of %d bytes is shorter than struct dm_ioctl", len(b))
	}
	le := binary.LittleEndian
	return header{
		Version:     [3]uint32{le.Uint32(b[0:]), le.Uint32(b[4:]), le.Uint32(b[8:])},
		DataSize:    le.Uint32(b[12:]),
		DataStart:   le.Uint32(b[16:]),
		TargetCount: le.Uint32(b[20:]),
		OpenCount:   int32(le.Uint32(b[24:])),
		Flags:       le.Uint32(b[28:]),
		EventNr:     le.Uint32(b[32:]),
		Dev:         le.Uint64(b[40:]),
		Name:        cstring(b[48 : 48+nameLen]),
		UUID:        cstring(b[176 : 176+uuidLen]),
	}, nil
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// encodeTargets is the payload of DM_TABLE_LOAD: for each target a struct
// dm_target_spec, then its NUL-terminated parameters padded to 8 bytes;
// next is the offset from this spec to the next one.
func encodeTargets(ts []Target) ([]byte, error) {
	if len(ts) == 0 {
		return nil, errors.New("empty table")
	}
	var out []byte
	le := binary.LittleEndian
	for i, t := range ts {
		if t.Type == "" || len(t.Type) >= typeNameLen {
			return nil, fmt.Errorf("target %d: bad type %q", i, t.Type)
		}
		if strings.ContainsRune(t.Params, 0) {
			return nil, fmt.Errorf("target %d: parameters contain NUL", i)
		}
		if t.Length == 0 {
			return nil, fmt.Errorf("target %d: zero length", i)
		}
		n := targetSpecSize + len(t.Params) + 1
		n = (n + 7) &^ 7
		spec := make([]byte, n)
		le.PutUint64(spec[0:], t.Start)
		le.PutUint64(spec[8:], t.Length)
		// spec[16:20] is the status, out only.
		le.PutUint32(spec[20:], uint32(n))
		copy(spec[24:24+typeNameLen], t.Type)
		copy(spec[targetSpecSize:], t.Params)
		out = append(out, spec...)
	}
	return out, nil
}

// decodeTargets reads count target specs from the data area of a
// DM_TABLE_STATUS reply. In replies a spec's next field is the offset of the
// following spec from the start of the data area (the kernel's
// retrieve_status); in requests it is relative to the current spec.
func decodeTargets(data []byte, count uint32) ([]Target, error) {
	var ts []Target
	le := binary.LittleEndian
	off := 0
	for i := uint32(0); i < count; i++ {
		if off+targetSpecSize > len(data) {
			return nil, fmt.Errorf("target %d: spec at %d beyond the reply's %d bytes", i, off, len(data))
		}
		s := data[off:]
		t := Target{
			Start:  le.Uint64(s[0:]),
			Length: le.Uint64(s[8:]),
			Type:   cstring(s[24 : 24+typeNameLen]),
			Params: cstring(s[targetSpecSize:]),
		}
		ts = append(ts, t)
		next := int(le.Uint32(s[20:]))
		if i+1 < count && next <= off {
			return nil, fmt.Errorf("target %d: next offset %d does not advance", i, next)
		}
		off = next
	}
	return ts, nil
}

// Device is a device-mapper device.
type Device struct {
	// Name is the device's DM name.
	Name string
	// Major and Minor are its device number.
	Major, Minor uint32
}

// Path is the device node devtmpfs creates: /dev/dm-<minor>.
func (d Device) Path() string { return "/dev/dm-" + strconv.FormatUint(uint64(d.Minor), 10) }

// MapperPath is the /dev/mapper/<name> link udev would create. Gantry's
// initramfs has no udev, so use Path there.
func (d Device) MapperPath() string { return "/dev/mapper/" + d.Name }

// decodeDev splits the kernel's huge_encode_dev form of a dev_t (the dev
// field of struct dm_ioctl).
func decodeDev(dev uint64) (major, minor uint32) {
	major = uint32((dev >> 8) & 0xfff)
	minor = uint32(dev&0xff | (dev>>12)&0xfff00)
	return major, minor
}

// Verity is a dm-verity target: the parameters of a format-1 table line
// (see the kernel's Documentation/admin-guide/device-mapper/verity.rst).
type Verity struct {
	// DataDevice and HashDevice are block devices as "major:minor" or a
	// path the kernel can look up.
	DataDevice, HashDevice string
	// DataBlockSize and HashBlockSize are in bytes.
	DataBlockSize, HashBlockSize uint32
	// DataBlocks is the number of data blocks verified; the target is
	// DataBlocks*DataBlockSize bytes long.
	DataBlocks uint64
	// HashStartBlock is the tree's offset on the hash device in hash
	// blocks (1 with a veritysetup superblock in front of the tree).
	HashStartBlock uint64
	// Algorithm is the hash, e.g. "sha256"; RootHash and Salt are hex
	// (Salt "-" or empty for none).
	Algorithm, RootHash, Salt string
	// Options are the optional arguments, e.g. "panic_on_corruption",
	// "restart_on_corruption", "ignore_zero_blocks".
	Options []string
}

// Target returns the verity table line covering the whole data.
func (v Verity) Target() (Target, error) {
	switch {
	case v.DataDevice == "" || v.HashDevice == "":
		return Target{}, errors.New("verity: data and hash devices are required")
	case strings.ContainsAny(v.DataDevice+v.HashDevice, " \t\n"):
		return Target{}, errors.New("verity: device names contain white space")
	case v.DataBlockSize < 512 || v.DataBlockSize&(v.DataBlockSize-1) != 0,
		v.HashBlockSize < 512 || v.HashBlockSize&(v.HashBlockSize-1) != 0:
		return Target{}, fmt.Errorf("verity: bad block sizes %d/%d", v.DataBlockSize, v.HashBlockSize)
	case v.DataBlocks == 0:
		return Target{}, errors.New("verity: zero data blocks")
	case v.Algorithm == "" || strings.ContainsAny(v.Algorithm, " \t\n"):
		return Target{}, fmt.Errorf("verity: bad algorithm %q", v.Algorithm)
	}
	if !isHex(v.RootHash) || v.RootHash == "" {
		return Target{}, fmt.Errorf("verity: root hash %q is not hex", v.RootHash)
	}
	salt := v.Salt
	if salt == "" {
		salt = "-"
	}
	if salt != "-" && !isHex(salt) {
		return Target{}, fmt.Errorf("verity: salt %q is not hex", v.Salt)
	}
	params := fmt.Sprintf("1 %s %s %d %d %d %d %s %s %s",
		v.DataDevice, v.HashDevice, v.DataBlockSize, v.HashBlockSize, v.DataBlocks, v.HashStartBlock,
		v.Algorithm, strings.ToLower(v.RootHash), strings.ToLower(salt))
	if len(v.Options) > 0 {
		for _, o := range v.Options {
			if o == "" || strings.ContainsAny(o, " \t\n") {
				return Target{}, fmt.Errorf("verity: bad option %q", o)
			}
		}
		params += " " + strconv.Itoa(len(v.Options)) + " " + strings.Join(v.Options, " ")
	}
	return Target{Start: 0, Length: v.DataBlocks * uint64(v.DataBlockSize) / 512, Type: "verity", Params: params}, nil
}

func isHex(s string) bool {
	if len(s)%2 != 0 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Status is one target's line of DM_TABLE_STATUS.
type Status struct {
	Target
	// For a verity target Params is "V" (verified so far) or "C" (a
	// corrupted block was found).
}

// Corrupted reports whether a verity target's status says a block failed
// verification.
func (s Status) Corrupted() bool {
	return s.Type == "verity" && strings.HasPrefix(s.Params, "C")
}
