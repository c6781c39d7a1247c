package tufrepo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// Compressing an image streams it: the memory allocated does not grow with
// the image.
func TestCompressionStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 128 MiB image")
	}
	const size = 128 << 20
	f := newFixture(t)
	p := filepath.Join(t.TempDir(), "big.img")
	fh, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// Half random, half zeros: some of it compresses.
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	for i := 0; i < size/len(buf); i++ {
		if i%2 == 0 {
			for j := range buf {
				buf[j] = byte(rng.Uint32())
			}
		} else {
			clear(buf)
		}
		if _, err := fh.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tf, err := f.repo.storeCompressed(context.Background(), "big.img.zst", p)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("compressed %d MiB to %d MiB allocating %d MiB", size>>20, tf.Length>>20, alloc>>20)
	if alloc > size/2 {
		t.Errorf("compressing %d MiB allocated %d MiB", size>>20, alloc>>20)
	}
	// And it decompresses to the input.
	tp, err := f.repo.targetPath("big.img.zst", tf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sha256File(t, tp, true), sha256File(t, p, false); got != want {
		t.Errorf("the target decompresses to sha256 %s, the image is %s", got, want)
	}
	var c TargetCustom
	if err := json.Unmarshal(*tf.Custom, &c); err != nil || c.DecompressedSHA256 != sha256File(t, p, false) || c.DecompressedLength != size {
		t.Errorf("custom metadata %+v (%v)", c, err)
	}
}

func sha256File(t *testing.T, p string, zst bool) string {
	t.Helper()
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var r io.Reader = fh
	if zst {
		d, err := zstd.NewReader(fh)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		r = d
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
