package qemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/testsupport"
)

// sparseImage writes a 64 MiB file with data only at a few places.
func sparseImage(t *testing.T, path string) map[int64][]byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	chunks := map[int64][]byte{0: nil, 5<<20 + 123: nil, 64<<20 - 4096: nil}
	for off := range chunks {
		b := make([]byte, 4096)
		rand.Read(b)
		chunks[off] = b
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	return chunks
}

func TestSparseCopy(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
	chunks := sparseImage(t, src)
	if err := sparseCopy(context.Background(), dst, src); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	if !bytes.Equal(a, b) {
		t.Fatal("copy differs from the image")
	}
	for off, want := range chunks {
		if !bytes.Equal(b[off:off+4096], want) {
			t.Fatalf("chunk at %d differs", off)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dst, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 16<<20 {
		t.Errorf("copy uses %d bytes on disk for 12 KiB of data: not sparse", used)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sparseCopy(ctx, filepath.Join(dir, "c.img"), src); err == nil {
		t.Error("cancelled copy succeeded")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "c.img*")); len(m) != 0 {
		t.Errorf("cancelled copy left %v", m)
	}
}

func TestPrepareDisk(t *testing.T) {
	for _, mode := range []string{diskCopy, diskOverlay} {
		t.Run(mode, func(t *testing.T) {
			if mode == diskOverlay {
				testsupport.RequireTool(t, DefaultQEMUImg)
			}
			dir := t.TempDir()
			img := filepath.Join(dir, "gantry.img")
			sparseImage(t, img)
			o := Options{Image: img, RunDir: filepath.Join(dir, "run"), DiskMode: mode, QEMUImg: DefaultQEMUImg,
				Logger: slog.New(slog.DiscardHandler)}
			os.MkdirAll(o.RunDir, 0o755)
			steps := []struct {
				name       string
				before     func()
				fresh      bool
				wantReused bool
			}{
				{name: "first run makes a disk"},
				{name: "second run keeps it", wantReused: true},
				{name: "fresh discards it", fresh: true},
				{name: "a rebuilt image gets a new disk", before: func() {
					later := time.Now().Add(time.Minute)
					os.Chtimes(img, later, later)
				}},
				{name: "then it is kept again", wantReused: true},
			}
			sentinel := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
			var prev os.FileInfo
			for _, s := range steps {
				if s.before != nil {
					s.before()
				}
				o.Fresh = s.fresh
				d, err := prepareDisk(context.Background(), o)
				if err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				if d.reused != s.wantReused {
					t.Fatalf("%s: reused %v, want %v", s.name, d.reused, s.wantReused)
				}
				fi, err := os.Stat(d.path)
				if err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				// A kept disk still has the time set after the last step.
				if kept := fi.ModTime().Equal(sentinel); kept != s.wantReused {
					t.Fatalf("%s: disk kept %v, want %v", s.name, kept, s.wantReused)
				}
				os.Chtimes(d.path, sentinel, sentinel)
				prev = fi
				want := map[string]string{diskCopy: "raw", diskOverlay: "qcow2"}[mode]
				if d.format != want {
					t.Fatalf("format %s, want %s", d.format, want)
				}
			}
			if mode == diskOverlay {
				info, err := exec.Command(DefaultQEMUImg, "info", filepath.Join(o.RunDir, prev.Name())).CombinedOutput()
				if err != nil || !bytes.Contains(info, []byte("backing file: "+img)) {
					t.Errorf("overlay not backed by the image (%v):\n%s", err, info)
				}
			}
		})
	}
}
