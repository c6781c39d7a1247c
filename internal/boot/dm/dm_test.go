package dm

import (
	"encoding/binary"
	"strings"
	"testing"
)

func TestIoctlNumbers(t *testing.T) {
	// Values from linux/dm-ioctl.h on x86-64 (as strace prints them).
	for _, tc := range []struct {
		nr   uint
		want uint
	}{
		{cmdVersion, 0xc138fd00},
		{cmdDevCreate, 0xc138fd03},
		{cmdDevRemove, 0xc138fd04},
		{cmdDevSuspend, 0xc138fd06},
		{cmdTableLoad, 0xc138fd09},
		{cmdTableStatus, 0xc138fd0c},
	} {
		if got := ioctlNumber(tc.nr); got != tc.want {
			t.Errorf("ioctlNumber(%d) = %#x, want %#x", tc.nr, got, tc.want)
		}
	}
}

func TestHeaderEncoding(t *testing.T) {
	h := header{Version: [3]uint32{4, 0, 0}, Name: "root", UUID: "GANTRY-ROOT", Flags: FlagReadOnly, TargetCount: 1, Dev: 0x12345}
	b, err := h.encode([]byte("xyz"), 0)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"length", uint64(len(b)), headerSize + 3},
		{"version major", uint64(le.Uint32(b[0:])), 4},
		{"data_size", uint64(le.Uint32(b[12:])), headerSize + 3},
		{"data_start", uint64(le.Uint32(b[16:])), headerSize},
		{"target_count", uint64(le.Uint32(b[20:])), 1},
		{"flags", uint64(le.Uint32(b[28:])), uint64(FlagReadOnly)},
		{"dev", le.Uint64(b[40:]), 0x12345},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if string(b[48:52]) != "root" || b[52] != 0 || string(b[176:187]) != "GANTRY-ROOT" || string(b[headerSize:]) != "xyz" {
		t.Errorf("name/uuid/payload misplaced: %q %q %q", b[48:53], b[176:188], b[headerSize:])
	}
	back, err := decodeHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Name != "root" || back.UUID != "GANTRY-ROOT" || back.Flags != FlagReadOnly || back.Dev != 0x12345 || back.DataSize != headerSize+3 {
		t.Errorf("decode: %+v", back)
	}
	big, _ := h.encode(nil, 16384)
	if len(big) != 16384 || le.Uint32(big[12:]) != 16384 {
		t.Errorf("buffer size not honoured: %d", len(big))
	}
}

func TestHeaderRejects(t *testing.T) {
	for _, h := range []header{
		{Name: strings.Repeat("n", nameLen)},
		{UUID: strings.Repeat("u", uuidLen)},
		{Name: "a/b"},
		{Name: "a\x00b"},
	} {
		if _, err := h.encode(nil, 0); err == nil {
			t.Errorf("encode(%q, %q) succeeded", h.Name, h.UUID)
		}
	}
}

func TestTargetEncoding(t *testing.T) {
	ts := []Target{
		{Start: 0, Length: 8, Type: "linear", Params: "8:1 0"},             // 40+6 -> 48
		{Start: 8, Length: 16, Type: "verity", Params: "1234567890abcdef"}, // 40+17 -> 64
	}
	b, err := encodeTargets(ts)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if len(b) != 48+64 {
		t.Fatalf("payload is %d bytes, want 112", len(b))
	}
	if le.Uint64(b[0:]) != 0 || le.Uint64(b[8:]) != 8 || le.Uint32(b[20:]) != 48 || cstring(b[24:40]) != "linear" || cstring(b[40:]) != "8:1 0" {
		t.Errorf("first spec wrong: % x", b[:48])
	}
	s := b[48:]
	if le.Uint64(s[0:]) != 8 || le.Uint64(s[8:]) != 16 || le.Uint32(s[20:]) != 64 || cstring(s[24:40]) != "verity" || cstring(s[40:]) != "1234567890abcdef" {
		t.Errorf("second spec wrong: % x", s)
	}

	// A reply uses offsets from the data area's start.
	reply := append([]byte(nil), b...)
	le.PutUint32(reply[48+20:], 112)
	got, err := decodeTargets(reply, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != ts[0] || got[1] != ts[1] {
		t.Errorf("decode: %+v", got)
	}
	if _, err := decodeTargets(reply[:50], 2); err == nil {
		t.Error("decoding a truncated reply succeeded")
	}
}

func TestTargetRejects(t *testing.T) {
	for _, ts := range [][]Target{
		nil,
		{{Length: 1, Type: ""}},
		{{Length: 1, Type: "averyveryverylongtype"}},
		{{Length: 0, Type: "linear"}},
		{{Length: 1, Type: "linear", Params: "a\x00"}},
	} {
		if _, err := encodeTargets(ts); err == nil {
			t.Errorf("encodeTargets(%+v) succeeded", ts)
		}
	}
}

func TestDecodeDev(t *testing.T) {
	for _, tc := range []struct {
		dev          uint64
		major, minor uint32
	}{
		{0xfd00, 253, 0},
		{0xfd05, 253, 5},
		{0x10fd01, 253, 0x101}, // minor 257: low 8 bits, then bits 20+
		{0xfe02, 254, 2},
	} {
		ma, mi := decodeDev(tc.dev)
		if ma != tc.major || mi != tc.minor {
			t.Errorf("decodeDev(%#x) = %d:%d, want %d:%d", tc.dev, ma, mi, tc.major, tc.minor)
		}
	}
	d := Device{Name: "root", Major: 253, Minor: 0}
	if d.Path() != "/dev/dm-0" || d.MapperPath() != "/dev/mapper/root" {
		t.Errorf("paths %s %s", d.Path(), d.MapperPath())
	}
}

func TestVerityTarget(t *testing.T) {
	root := strings.Repeat("d9", 32)
	salt := strings.Repeat("00", 32)
	base := Verity{
		DataDevice: "254:1", HashDevice: "254:2", DataBlockSize: 4096, HashBlockSize: 4096,
		DataBlocks: 1509, HashStartBlock: 1, Algorithm: "sha256", RootHash: root, Salt: salt,
	}
	for _, tc := range []struct {
		name    string
		mod     func(*Verity)
		want    string // the full table line, or "" for an error
		wantErr bool
	}{
		{"as measured", func(*Verity) {}, "0 12072 verity 1 254:1 254:2 4096 4096 1509 1 sha256 " + root + " " + salt, false},
		{"options", func(v *Verity) { v.Options = []string{"panic_on_corruption"} },
			"0 12072 verity 1 254:1 254:2 4096 4096 1509 1 sha256 " + root + " " + salt + " 1 panic_on_corruption", false},
		{"no salt", func(v *Verity) { v.Salt = "" }, "0 12072 verity 1 254:1 254:2 4096 4096 1509 1 sha256 " + root + " -", false},
		{"upper-case hash", func(v *Verity) { v.RootHash = strings.ToUpper(root) }, "0 12072 verity 1 254:1 254:2 4096 4096 1509 1 sha256 " + root + " " + salt, false},
		{"bad root", func(v *Verity) { v.RootHash = "xyz" }, "", true},
		{"empty root", func(v *Verity) { v.RootHash = "" }, "", true},
		{"bad salt", func(v *Verity) { v.Salt = "zz" }, "", true},
		{"no device", func(v *Verity) { v.DataDevice = "" }, "", true},
		{"space in device", func(v *Verity) { v.HashDevice = "/dev/a b" }, "", true},
		{"bad block size", func(v *Verity) { v.DataBlockSize = 1000 }, "", true},
		{"zero blocks", func(v *Verity) { v.DataBlocks = 0 }, "", true},
		{"bad option", func(v *Verity) { v.Options = []string{"a b"} }, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := base
			tc.mod(&v)
			got, err := v.Target()
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Target() = %s, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Errorf("Target() =\n %s\nwant\n %s", got, tc.want)
			}
		})
	}
}

func TestStatusCorrupted(t *testing.T) {
	for _, tc := range []struct {
		s    Status
		want bool
	}{
		{Status{Target{Type: "verity", Params: "V"}}, false},
		{Status{Target{Type: "verity", Params: "C"}}, true},
		{Status{Target{Type: "linear", Params: "C"}}, false},
	} {
		if got := tc.s.Corrupted(); got != tc.want {
			t.Errorf("%+v.Corrupted() = %v", tc.s, got)
		}
	}
}
