package verity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/testsupport"
)

func writeData(t *testing.T, dir string, blocks, bs int, seed uint64) string {
	t.Helper()
	b := make([]byte, blocks*bs)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	p := filepath.Join(dir, "data.img")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// refTree is an independent, naive implementation of the format: hash every
// block of the level below, pack, pad, repeat until one block.
func refTree(data, salt []byte, dataBS, hashBS int) (root []byte, levelsTopFirst []byte) {
	h := func(b []byte) []byte {
		s := sha256.New()
		s.Write(salt)
		s.Write(b)
		return s.Sum(nil)
	}
	if len(data) == dataBS {
		return h(data), nil
	}
	var levels [][]byte
	cur, bs := data, dataBS
	for {
		var lvl []byte
		for off := 0; off < len(cur); off += bs {
			lvl = append(lvl, h(cur[off:off+bs])...)
		}
		if pad := len(lvl) % hashBS; pad != 0 {
			lvl = append(lvl, make([]byte, hashBS-pad)...)
		}
		levels = append(levels, lvl)
		if len(lvl) == hashBS {
			break
		}
		cur, bs = lvl, hashBS
	}
	for i := len(levels) - 1; i >= 0; i-- {
		levelsTopFirst = append(levelsTopFirst, levels[i]...)
	}
	return h(levels[len(levels)-1]), levelsTopFirst
}

func TestCreateMatchesReference(t *testing.T) {
	salt := bytes.Repeat([]byte{0xab}, 32)
	for _, tc := range []struct {
		name           string
		blocks, dataBS int
		hashBS         int
		salt           []byte
	}{
		{"one block", 1, 4096, 4096, salt},
		{"two blocks", 2, 4096, 4096, salt},
		{"one full hash block", 128, 4096, 4096, salt},
		{"two levels", 129, 4096, 4096, salt},
		{"three levels", 128*128 + 1, 4096, 4096, salt},
		{"no salt", 300, 4096, 4096, []byte{}},
		{"small blocks", 70, 512, 1024, salt[:5]},
		{"big data blocks", 40, 8192, 4096, salt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dataPath := writeData(t, dir, tc.blocks, tc.dataBS, uint64(tc.blocks))
			hashPath := filepath.Join(dir, "hash.img")
			res, err := Create(context.Background(), dataPath, hashPath, Options{Salt: tc.salt, DataBlockSize: tc.dataBS, HashBlockSize: tc.hashBS})
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(dataPath)
			root, tree := refTree(data, tc.salt, tc.dataBS, tc.hashBS)
			if res.RootHash != hex.EncodeToString(root) {
				t.Errorf("root hash %s, reference %x", res.RootHash, root)
			}
			if res.Salt != hex.EncodeToString(tc.salt) || res.DataBlocks != uint64(tc.blocks) {
				t.Errorf("result %+v", res)
			}
			hashDev, _ := os.ReadFile(hashPath)
			start := max(tc.hashBS, SuperblockSize)
			if int64(len(hashDev)) != res.HashSize || !bytes.Equal(hashDev[start:], tree) {
				t.Errorf("hash device: %d bytes (HashSize %d), tree equal to reference: %v", len(hashDev), res.HashSize, bytes.Equal(hashDev[start:], tree))
			}
			f, _ := os.Open(hashPath)
			defer f.Close()
			sb, err := ReadSuperblock(f)
			if err != nil {
				t.Fatal(err)
			}
			if sb.DataBlocks != uint64(tc.blocks) || !bytes.Equal(sb.Salt, tc.salt) || sb.Algorithm != "sha256" ||
				sb.DataBlockSize != uint32(tc.dataBS) || sb.HashBlockSize != uint32(tc.hashBS) || sb.UUID != res.UUID {
				t.Errorf("superblock %+v, result %+v", sb, res)
			}
			if err := Verify(context.Background(), dataPath, hashPath, res.RootHash); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestDefaultsAreDeterministic(t *testing.T) {
	dir := t.TempDir()
	dataPath := writeData(t, dir, 200, 4096, 7)
	var results []Result
	for i := range 2 {
		res, err := Create(context.Background(), dataPath, filepath.Join(dir, "hash"+string(rune('0'+i))), Options{})
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, res)
	}
	if results[0] != results[1] {
		t.Fatalf("two builds differ: %+v %+v", results[0], results[1])
	}
	a, _ := os.ReadFile(filepath.Join(dir, "hash0"))
	b, _ := os.ReadFile(filepath.Join(dir, "hash1"))
	if !bytes.Equal(a, b) {
		t.Fatal("hash devices differ")
	}
	data, _ := os.ReadFile(dataPath)
	if sum := sha256.Sum256(data); results[0].Salt != hex.EncodeToString(sum[:]) {
		t.Errorf("default salt %s, want sha256 of the data %x", results[0].Salt, sum)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(results[0].UUID) {
		t.Errorf("default UUID %q is not a version 4 UUID", results[0].UUID)
	}
}

func TestVerifyDetectsCorruption(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(dataPath, hashPath string, root *string)
		want    string
	}{
		{"data byte", func(d, _ string, _ *string) { flip(t, d, 4096*77+5) }, "differs"},
		{"hash byte", func(_, h string, _ *string) { flip(t, h, 4096+40) }, "differs"},
		{"root hash", func(_, _ string, r *string) { *r = strings.Repeat("00", 32) }, "root hash is"},
		{"superblock", func(_, h string, _ *string) { flip(t, h, 0) }, "signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dataPath := writeData(t, dir, 300, 4096, 3)
			hashPath := filepath.Join(dir, "hash.img")
			res, err := Create(context.Background(), dataPath, hashPath, Options{})
			if err != nil {
				t.Fatal(err)
			}
			root := res.RootHash
			tc.corrupt(dataPath, hashPath, &root)
			err = Verify(context.Background(), dataPath, hashPath, root)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestCreateRejects(t *testing.T) {
	dir := t.TempDir()
	odd := filepath.Join(dir, "odd")
	os.WriteFile(odd, make([]byte, 5000), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	good := writeData(t, dir, 2, 4096, 1)
	for _, tc := range []struct {
		name string
		data string
		opts Options
	}{
		{"partial block", odd, Options{}},
		{"empty", empty, Options{}},
		{"missing", filepath.Join(dir, "nope"), Options{}},
		{"block size", good, Options{DataBlockSize: 3000}},
		{"salt too long", good, Options{Salt: make([]byte, 257)}},
		{"bad uuid", good, Options{UUID: "not-a-uuid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Create(context.Background(), tc.data, filepath.Join(dir, "h"), tc.opts); err == nil {
				t.Fatal("Create succeeded")
			}
		})
	}
}

func TestCreateHonoursContext(t *testing.T) {
	dir := t.TempDir()
	dataPath := writeData(t, dir, 10, 4096, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Create(ctx, dataPath, filepath.Join(dir, "h"), Options{}); err == nil {
		t.Fatal("Create with a cancelled context succeeded")
	}
}

func TestSuperblockRoundTrip(t *testing.T) {
	sb := Superblock{Version: 1, HashType: 1, UUID: "11111111-2222-3333-4444-555555555555", Algorithm: "sha256",
		DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 1509, Salt: []byte{1, 2, 3}}
	b, err := sb.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != SuperblockSize {
		t.Fatalf("%d bytes", len(b))
	}
	got, err := ReadSuperblock(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got.UUID != sb.UUID || got.DataBlocks != 1509 || !bytes.Equal(got.Salt, sb.Salt) || got.Algorithm != "sha256" {
		t.Fatalf("round trip: %+v", got)
	}
	if got.SaltHex() != "010203" || got.HashStartBlock() != 1 || got.DataSectors() != 1509*8 {
		t.Fatalf("derived: %s %d %d", got.SaltHex(), got.HashStartBlock(), got.DataSectors())
	}
	if (Superblock{}).SaltHex() != "-" {
		t.Fatal("empty salt is not -")
	}
}

// TestMatchesVeritysetup checks byte-identity with cryptsetup's
// `veritysetup format` when it is installed (apt-get install cryptsetup-bin).
func TestMatchesVeritysetup(t *testing.T) {
	vs := testsupport.RequireTool(t, "veritysetup")
	for _, blocks := range []int{1, 2, 129, 1509, 128*128 + 3} {
		dir := t.TempDir()
		dataPath := writeData(t, dir, blocks, 4096, uint64(blocks))
		salt := bytes.Repeat([]byte{0x5a, 0x01}, 16)
		const uuid = "11111111-2222-3333-4444-555555555555"
		res, err := Create(context.Background(), dataPath, filepath.Join(dir, "go.hash"), Options{Salt: salt, UUID: uuid})
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(vs, "format", "--salt="+hex.EncodeToString(salt), "--uuid="+uuid,
			dataPath, filepath.Join(dir, "vs.hash")).CombinedOutput()
		if err != nil {
			t.Fatalf("veritysetup: %v\n%s", err, out)
		}
		m := regexp.MustCompile(`Root hash:\s+([0-9a-f]+)`).FindSubmatch(out)
		if m == nil || string(m[1]) != res.RootHash {
			t.Errorf("%d blocks: root hash %s, veritysetup says:\n%s", blocks, res.RootHash, out)
		}
		a, _ := os.ReadFile(filepath.Join(dir, "go.hash"))
		b, _ := os.ReadFile(filepath.Join(dir, "vs.hash"))
		if !bytes.Equal(a, b) {
			t.Errorf("%d blocks: hash devices differ (%d vs %d bytes)", blocks, len(a), len(b))
		}
	}
}
