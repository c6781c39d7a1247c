package updog

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func compress(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	enc, _ := zstd.NewWriter(&out)
	enc.Write(b)
	enc.Close()
	return out.Bytes()
}

func TestWriteVerified(t *testing.T) {
	image := make([]byte, 3<<20)
	rand.Read(image[:1<<20]) // part random, part zeros: compresses, but not trivially
	good := compress(t, image)
	sum := sha256.Sum256(good)
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)/2] ^= 0x40
	tests := []struct {
		name    string
		body    []byte
		length  int64
		size    int64
		wantErr string
		verify  bool // the error must be ErrVerify
	}{
		{name: "good", body: good, length: int64(len(good)), size: 4 << 20},
		{name: "corrupted byte", body: corrupt, length: int64(len(good)), size: 4 << 20, wantErr: "does not match its signed sha256", verify: true},
		{name: "truncated", body: good[:len(good)-100], length: int64(len(good)), size: 4 << 20, wantErr: "", verify: true},
		{name: "endless data", body: append(append([]byte(nil), good...), make([]byte, 1<<20)...), length: int64(len(good)), size: 4 << 20, wantErr: "longer than its signed", verify: true},
		{name: "partition too small", body: good, length: int64(len(good)), size: 2 << 20, wantErr: "larger than its"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "part"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var calls int
			err = writeVerified(context.Background(), "root.img.zst", bytes.NewReader(tt.body), tt.length, sum[:], f, tt.size,
				func(string, int64, int64) { calls++ })
			if tt.wantErr == "" && !tt.verify {
				if err != nil {
					t.Fatal(err)
				}
				got, _ := os.ReadFile(f.Name())
				if !bytes.Equal(got, image) {
					t.Fatal("partition content differs from the image")
				}
				if calls == 0 {
					t.Error("no progress reported")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want containing %q", err, tt.wantErr)
			}
			if tt.verify && !errors.Is(err, ErrVerify) {
				t.Fatalf("error %v is not ErrVerify", err)
			}
		})
	}
}

func TestWriteVerifiedHonoursContext(t *testing.T) {
	good := compress(t, make([]byte, 1<<20))
	sum := sha256.Sum256(good)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, _ := os.Create(filepath.Join(t.TempDir(), "part"))
	defer f.Close()
	if err := writeVerified(ctx, "x", bytes.NewReader(good), int64(len(good)), sum[:], f, 2<<20, nil); err == nil {
		t.Fatal("cancelled write succeeded")
	}
}
