// Package verity builds and reads dm-verity hash devices in the format
// `veritysetup format` writes: hash format 1 (the salt is hashed before each
// block), SHA-256, a 512-byte superblock at the start of the hash device
// padded to one hash block, then the hash tree with its top (root-most) level
// first.
//
// Create writes a hash device byte-identical to
//
//	veritysetup format --salt=<hex> --uuid=<uuid> \
//	    --data-block-size=4096 --hash-block-size=4096 data hash
//
// and is deterministic: without an explicit salt and UUID both are derived
// from the data, so the same root filesystem image always yields the same
// hash device and root hash. ReadSuperblock reads the superblock back, which
// the initramfs does before it loads the dm-verity table; Verify recomputes a
// tree and compares it with a hash device and a root hash.
package verity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Constants of the on-disk format.
const (
	// Signature starts every superblock: "verity" and two NULs.
	Signature = "verity\x00\x00"
	// SuperblockSize is the size of the superblock proper; the hash area
	// starts at the next hash block boundary.
	SuperblockSize = 512
	// DefaultBlockSize is the default data and hash block size.
	DefaultBlockSize = 4096
	// Algorithm is the only hash algorithm this package writes.
	Algorithm = "sha256"
	// HashType is the hash format: 1 is the normal format (salt first),
	// 0 the Chrome OS one.
	HashType = 1
	// MaxSaltSize is the largest salt the superblock holds.
	MaxSaltSize = 256
	// maxLevels is veritysetup's limit on the tree's depth.
	maxLevels = 63
)

// Options are the inputs of Create. The zero value is the default: 4 KiB
// blocks, salt and UUID derived from the data.
type Options struct {
	// Salt is the salt; nil means the deterministic default, the SHA-256
	// of the whole data (so builds are reproducible). A non-nil empty salt
	// means no salt.
	Salt []byte
	// DataBlockSize and HashBlockSize are in bytes, powers of two from 512
	// to 65536 (veritysetup's bounds are the same); 0 means 4096.
	DataBlockSize, HashBlockSize int
	// UUID is the hash device's UUID in canonical text form, stored in the
	// superblock. Empty means the deterministic default: a version 4 UUID
	// whose other bits are the first bytes of SHA-256("gantry verity uuid"
	// || salt).
	UUID string
}

// Result describes the hash device Create wrote.
type Result struct {
	// RootHash and Salt are lower-case hex.
	RootHash, Salt string
	// DataBlocks is the number of data blocks covered.
	DataBlocks uint64
	// HashSize is the size of the hash device in bytes: the superblock
	// block plus the tree.
	HashSize int64
	// UUID is the UUID written to the superblock.
	UUID string
	// DataBlockSize and HashBlockSize are the block sizes used.
	DataBlockSize, HashBlockSize int
}

// Superblock is the veritysetup superblock at the start of a hash device.
type Superblock struct {
	// Version is the superblock version (1).
	Version uint32
	// HashType is the hash format (1 normal, 0 Chrome OS).
	HashType uint32
	// UUID is the hash device's UUID in canonical text form.
	UUID string
	// Algorithm is the hash algorithm's name, e.g. "sha256".
	Algorithm string
	// DataBlockSize and HashBlockSize are in bytes.
	DataBlockSize, HashBlockSize uint32
	// DataBlocks is the number of data blocks the tree covers.
	DataBlocks uint64
	// Salt is the raw salt.
	Salt []byte
}

// SaltHex is the salt in hex, or "-" when there is none, as the dm-verity
// table wants it.
func (sb Superblock) SaltHex() string {
	if len(sb.Salt) == 0 {
		return "-"
	}
	return hex.EncodeToString(sb.Salt)
}

// HashStartBlock is the first block of the hash tree on the hash device, in
// hash blocks: the superblock's 512 bytes rounded up to a hash block.
func (sb Superblock) HashStartBlock() uint64 {
	return uint64((SuperblockSize + sb.HashBlockSize - 1) / sb.HashBlockSize)
}

// DataSectors is the size of the verified data in 512-byte sectors: the
// length of the dm-verity table's single target.
func (sb Superblock) DataSectors() uint64 {
	return sb.DataBlocks * uint64(sb.DataBlockSize) / 512
}

// MarshalBinary encodes the superblock in its 512-byte on-disk form.
func (sb Superblock) MarshalBinary() ([]byte, error) {
	if len(sb.Salt) > MaxSaltSize {
		return nil, fmt.Errorf("verity superblock: salt of %d bytes exceeds %d", len(sb.Salt), MaxSaltSize)
	}
	if len(sb.Algorithm) >= 32 {
		return nil, fmt.Errorf("verity superblock: algorithm name %q too long", sb.Algorithm)
	}
	uuid, err := parseUUID(sb.UUID)
	if err != nil {
		return nil, fmt.Errorf("verity superblock: %w", err)
	}
	b := make([]byte, SuperblockSize)
	copy(b[0:8], Signature)
	le := binary.LittleEndian
	le.PutUint32(b[8:], sb.Version)
	le.PutUint32(b[12:], sb.HashType)
	copy(b[16:32], uuid[:])
	copy(b[32:64], sb.Algorithm)
	le.PutUint32(b[64:], sb.DataBlockSize)
	le.PutUint32(b[68:], sb.HashBlockSize)
	le.PutUint64(b[72:], sb.DataBlocks)
	le.PutUint16(b[80:], uint16(len(sb.Salt)))
	// b[82:88] is padding.
	copy(b[88:88+MaxSaltSize], sb.Salt)
	// b[344:512] is padding.
	return b, nil
}

// UnmarshalBinary decodes and checks a superblock read from offset 0 of a
// hash device.
func (sb *Superblock) UnmarshalBinary(b []byte) error {
	if len(b) < SuperblockSize {
		return fmt.Errorf("verity superblock: %d bytes, want %d", len(b), SuperblockSize)
	}
	if string(b[0:8]) != Signature {
		return fmt.Errorf("verity superblock: bad signature %q (not a veritysetup hash device?)", b[0:8])
	}
	le := binary.LittleEndian
	s := Superblock{
		Version:       le.Uint32(b[8:]),
		HashType:      le.Uint32(b[12:]),
		UUID:          formatUUID([16]byte(b[16:32])),
		Algorithm:     string(bytes.TrimRight(b[32:64], "\x00")),
		DataBlockSize: le.Uint32(b[64:]),
		HashBlockSize: le.Uint32(b[68:]),
		DataBlocks:    le.Uint64(b[72:]),
	}
	saltSize := int(le.Uint16(b[80:]))
	switch {
	case s.Version != 1:
		return fmt.Errorf("verity superblock: unsupported version %d", s.Version)
	case s.HashType > 1:
		return fmt.Errorf("verity superblock: unsupported hash type %d", s.HashType)
	case saltSize > MaxSaltSize:
		return fmt.Errorf("verity superblock: salt size %d exceeds %d", saltSize, MaxSaltSize)
	case s.Algorithm == "" || strings.ContainsRune(s.Algorithm, 0):
		return fmt.Errorf("verity superblock: bad algorithm name %q", b[32:64])
	}
	if err := checkBlockSize("data", int(s.DataBlockSize)); err != nil {
		return fmt.Errorf("verity superblock: %w", err)
	}
	if err := checkBlockSize("hash", int(s.HashBlockSize)); err != nil {
		return fmt.Errorf("verity superblock: %w", err)
	}
	if s.DataBlocks == 0 {
		return errors.New("verity superblock: zero data blocks")
	}
	s.Salt = append([]byte(nil), b[88:88+saltSize]...)
	*sb = s
	return nil
}

// ReadSuperblock reads and checks the superblock at offset 0 of a hash device.
func ReadSuperblock(r io.ReaderAt) (Superblock, error) {
	b := make([]byte, SuperblockSize)
	if _, err := r.ReadAt(b, 0); err != nil {
		return Superblock{}, fmt.Errorf("read verity superblock: %w", err)
	}
	var sb Superblock
	if err := sb.UnmarshalBinary(b); err != nil {
		return Superblock{}, err
	}
	return sb, nil
}

func checkBlockSize(what string, n int) error {
	if n < 512 || n > 65536 || n&(n-1) != 0 {
		return fmt.Errorf("%s block size %d is not a power of two from 512 to 65536", what, n)
	}
	return nil
}

// Create computes the hash tree of the data at dataPath and writes the hash
// device (superblock, then tree) to hashPath, creating or truncating it. The
// data's size must be a positive multiple of the data block size: a partial
// last block would go unverified, so Create refuses it.
func Create(ctx context.Context, dataPath, hashPath string, opts Options) (Result, error) {
	res, err := create(ctx, dataPath, hashPath, opts)
	if err != nil {
		return Result{}, fmt.Errorf("verity create %s: %w", dataPath, err)
	}
	return res, nil
}

func create(ctx context.Context, dataPath, hashPath string, opts Options) (Result, error) {
	g, err := newGeometry(opts.DataBlockSize, opts.HashBlockSize)
	if err != nil {
		return Result{}, err
	}
	data, err := os.Open(dataPath)
	if err != nil {
		return Result{}, err
	}
	defer data.Close()
	size, err := data.Seek(0, io.SeekEnd)
	if err != nil {
		return Result{}, fmt.Errorf("size of data: %w", err)
	}
	if size == 0 || size%int64(g.dataBS) != 0 {
		return Result{}, fmt.Errorf("data size %d is not a positive multiple of the data block size %d", size, g.dataBS)
	}
	salt := opts.Salt
	if salt == nil {
		if salt, err = hashAll(ctx, data, size); err != nil {
			return Result{}, fmt.Errorf("default salt: %w", err)
		}
	}
	if len(salt) > MaxSaltSize {
		return Result{}, fmt.Errorf("salt of %d bytes exceeds %d", len(salt), MaxSaltSize)
	}
	uuid := opts.UUID
	if uuid == "" {
		uuid = defaultUUID(salt)
	}
	sb := Superblock{
		Version: 1, HashType: HashType, UUID: uuid, Algorithm: Algorithm,
		DataBlockSize: uint32(g.dataBS), HashBlockSize: uint32(g.hashBS),
		DataBlocks: uint64(size) / uint64(g.dataBS), Salt: salt,
	}
	sbBytes, err := sb.MarshalBinary()
	if err != nil {
		return Result{}, err
	}
	t, err := buildTree(ctx, data, sb, g)
	if err != nil {
		return Result{}, err
	}

	out, err := os.OpenFile(hashPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return Result{}, err
	}
	defer out.Close()
	head := make([]byte, int64(g.hashBS)*int64(sb.HashStartBlock()))
	copy(head, sbBytes)
	if _, err := out.Write(head); err != nil {
		return Result{}, fmt.Errorf("write %s: %w", hashPath, err)
	}
	for _, lvl := range t.topFirst() {
		if _, err := out.Write(lvl); err != nil {
			return Result{}, fmt.Errorf("write %s: %w", hashPath, err)
		}
	}
	if err := out.Sync(); err != nil {
		return Result{}, fmt.Errorf("sync %s: %w", hashPath, err)
	}
	if err := out.Close(); err != nil {
		return Result{}, fmt.Errorf("close %s: %w", hashPath, err)
	}
	return Result{
		RootHash:      hex.EncodeToString(t.root),
		Salt:          hex.EncodeToString(salt),
		DataBlocks:    sb.DataBlocks,
		HashSize:      int64(len(head)) + t.size(),
		UUID:          uuid,
		DataBlockSize: g.dataBS,
		HashBlockSize: g.hashBS,
	}, nil
}

// Verify recomputes the hash tree of the data at dataPath with the
// parameters in hashPath's superblock and checks that it equals the tree on
// the hash device and that its root is rootHash (hex). It reports the first
// difference.
func Verify(ctx context.Context, dataPath, hashPath, rootHash string) error {
	if err := verify(ctx, dataPath, hashPath, rootHash); err != nil {
		return fmt.Errorf("verity verify %s against %s: %w", dataPath, hashPath, err)
	}
	return nil
}

func verify(ctx context.Context, dataPath, hashPath, rootHash string) error {
	want, err := hex.DecodeString(rootHash)
	if err != nil || len(want) != sha256.Size {
		return fmt.Errorf("root hash %q is not %d bytes of hex", rootHash, sha256.Size)
	}
	hf, err := os.Open(hashPath)
	if err != nil {
		return err
	}
	defer hf.Close()
	sb, err := ReadSuperblock(hf)
	if err != nil {
		return err
	}
	if sb.Algorithm != Algorithm || sb.HashType != HashType {
		return fmt.Errorf("unsupported hash %s (type %d); only %s type %d", sb.Algorithm, sb.HashType, Algorithm, HashType)
	}
	g, err := newGeometry(int(sb.DataBlockSize), int(sb.HashBlockSize))
	if err != nil {
		return err
	}
	data, err := os.Open(dataPath)
	if err != nil {
		return err
	}
	defer data.Close()
	size, err := data.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("size of data: %w", err)
	}
	if size < int64(sb.DataBlocks)*int64(g.dataBS) {
		return fmt.Errorf("data is %d bytes, the superblock covers %d blocks of %d", size, sb.DataBlocks, g.dataBS)
	}
	t, err := buildTree(ctx, data, sb, g)
	if err != nil {
		return err
	}
	off := int64(g.hashBS) * int64(sb.HashStartBlock())
	for i, lvl := range t.topFirst() {
		got := make([]byte, len(lvl))
		if _, err := hf.ReadAt(got, off); err != nil {
			return fmt.Errorf("read hash level %d at offset %d: %w", len(t.levels)-1-i, off, err)
		}
		if !bytes.Equal(got, lvl) {
			return fmt.Errorf("hash tree level %d at offset %d differs from the data", len(t.levels)-1-i, off)
		}
		off += int64(len(lvl))
	}
	if !bytes.Equal(t.root, want) {
		return fmt.Errorf("root hash is %x, want %s", t.root, rootHash)
	}
	return nil
}

// geometry is the block sizes and the number of digests per hash block.
type geometry struct {
	dataBS, hashBS int
	perBlock       int // digests per hash block, a power of two
}

func newGeometry(dataBS, hashBS int) (geometry, error) {
	if dataBS == 0 {
		dataBS = DefaultBlockSize
	}
	if hashBS == 0 {
		hashBS = DefaultBlockSize
	}
	if err := checkBlockSize("data", dataBS); err != nil {
		return geometry{}, err
	}
	if err := checkBlockSize("hash", hashBS); err != nil {
		return geometry{}, err
	}
	// veritysetup rounds the digests per block down to a power of two;
	// with SHA-256 and power-of-two blocks it is exact.
	per := 1
	for per*2*sha256.Size <= hashBS {
		per *= 2
	}
	return geometry{dataBS: dataBS, hashBS: hashBS, perBlock: per}, nil
}

// tree is a computed hash tree: levels[0] hashes the data blocks,
// levels[i] the blocks of levels[i-1]; each level is whole hash blocks.
type tree struct {
	levels [][]byte
	root   []byte
}

func (t *tree) topFirst() [][]byte {
	out := make([][]byte, 0, len(t.levels))
	for i := len(t.levels) - 1; i >= 0; i-- {
		out = append(out, t.levels[i])
	}
	return out
}

func (t *tree) size() int64 {
	var n int64
	for _, l := range t.levels {
		n += int64(len(l))
	}
	return n
}

// buildTree hashes sb.DataBlocks blocks of data and the levels above them.
// Like veritysetup, a single data block has no tree: the root hash is that
// block's digest.
func buildTree(ctx context.Context, data io.ReaderAt, sb Superblock, g geometry) (*tree, error) {
	h := newSaltedHash(sb.Salt)
	t := &tree{}
	if sb.DataBlocks == 1 {
		blk := make([]byte, g.dataBS)
		if _, err := data.ReadAt(blk, 0); err != nil {
			return nil, fmt.Errorf("read data block 0: %w", err)
		}
		t.root = h.sum(blk)
		return t, nil
	}
	lvl, err := hashLevel(ctx, io.NewSectionReader(data, 0, int64(sb.DataBlocks)*int64(g.dataBS)), sb.DataBlocks, g.dataBS, g, h)
	if err != nil {
		return nil, fmt.Errorf("hash data: %w", err)
	}
	t.levels = append(t.levels, lvl)
	for len(lvl) > g.hashBS {
		if len(t.levels) >= maxLevels {
			return nil, errors.New("hash tree too deep")
		}
		n := uint64(len(lvl) / g.hashBS)
		if lvl, err = hashLevel(ctx, bytes.NewReader(lvl), n, g.hashBS, g, h); err != nil {
			return nil, err
		}
		t.levels = append(t.levels, lvl)
	}
	t.root = h.sum(lvl)
	return t, nil
}

// hashLevel reads n blocks of size bs from r and returns their digests
// packed perBlock to a zero-padded hash block.
func hashLevel(ctx context.Context, r io.Reader, n uint64, bs int, g geometry, h *saltedHash) ([]byte, error) {
	hashBlocks := (n + uint64(g.perBlock) - 1) / uint64(g.perBlock)
	out := make([]byte, hashBlocks*uint64(g.hashBS))
	const chunk = 4 << 20
	bufBlocks := max(1, chunk/bs)
	buf := make([]byte, bufBlocks*bs)
	pos := func(i uint64) int {
		return int(i/uint64(g.perBlock))*g.hashBS + int(i%uint64(g.perBlock))*sha256.Size
	}
	for i := uint64(0); i < n; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k := min(uint64(bufBlocks), n-i)
		b := buf[:int(k)*bs]
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("read block %d: %w", i, err)
		}
		for j := uint64(0); j < k; j++ {
			h.sumInto(out[pos(i+j):], b[int(j)*bs:int(j+1)*bs])
		}
		i += k
	}
	return out, nil
}

// saltedHash is SHA-256 of salt || block (hash format 1).
type saltedHash struct {
	salt []byte
	sum1 [sha256.Size]byte
}

func newSaltedHash(salt []byte) *saltedHash { return &saltedHash{salt: salt} }

func (s *saltedHash) sumInto(dst, block []byte) {
	d := sha256.New()
	d.Write(s.salt)
	d.Write(block)
	copy(dst, d.Sum(s.sum1[:0]))
}

func (s *saltedHash) sum(block []byte) []byte {
	out := make([]byte, sha256.Size)
	s.sumInto(out, block)
	return out
}

func hashAll(ctx context.Context, r io.ReaderAt, size int64) ([]byte, error) {
	d := sha256.New()
	buf := make([]byte, 4<<20)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := int(min(int64(len(buf)), size-off))
		if _, err := r.ReadAt(buf[:n], off); err != nil {
			return nil, err
		}
		d.Write(buf[:n])
		off += int64(n)
	}
	return d.Sum(nil), nil
}

func defaultUUID(salt []byte) string {
	d := sha256.Sum256(append([]byte("gantry verity uuid"), salt...))
	var u [16]byte
	copy(u[:], d[:16])
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return formatUUID(u)
}

func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	h := strings.ReplaceAll(s, "-", "")
	if len(s) != 36 || len(h) != 32 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("UUID %q is not in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("UUID %q: %w", s, err)
	}
	return u, nil
}

func formatUUID(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
