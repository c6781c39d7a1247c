package qemu

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/testsupport"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{"", 0, false},
		{"4096", 4096, false},
		{"4G", 4 << 30, false},
		{"4g", 4 << 30, false},
		{"512M", 512 << 20, false},
		{"1T", 1 << 40, false},
		{"3GB", 3 << 30, false},
		{"64K", 64 << 10, false},
		{"-1G", 0, true},
		{"G", 0, true},
		{"4X", 0, true},
		{"1.5G", 0, true},
		{"99999999999T", 0, true},
	} {
		got, err := ParseSize(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d (error: %v)", tc.in, got, err, tc.want, tc.bad)
		}
		if err != nil && !strings.Contains(err.Error(), strconv.Quote(tc.in)) {
			t.Errorf("ParseSize(%q): error %q does not name the input", tc.in, err)
		}
	}
}

// TestDiskSize: a new disk is the image followed by zeros up to the size
// asked, in both disk modes; a size below the image's is refused.
func TestDiskSize(t *testing.T) {
	img := filepath.Join(t.TempDir(), "image.img")
	content := []byte(strings.Repeat("gantry image ", 1000))
	if err := os.WriteFile(img, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 4<<20); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{diskCopy, diskOverlay} {
		t.Run(mode, func(t *testing.T) {
			if mode == diskOverlay {
				testsupport.RequireTool(t, DefaultQEMUImg)
			}
			o := Options{Image: img, RunDir: t.TempDir(), DiskMode: mode, DiskSize: 64 << 20, QEMUImg: DefaultQEMUImg,
				Logger: slog.New(slog.DiscardHandler)}
			d, err := prepareDisk(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			raw := d.path
			if d.format == "qcow2" {
				raw = filepath.Join(t.TempDir(), "flat.img")
				if out, err := exec.Command(DefaultQEMUImg, "convert", "-O", "raw", d.path, raw).CombinedOutput(); err != nil {
					t.Fatalf("qemu-img convert: %v\n%s", err, out)
				}
			}
			got, err := os.ReadFile(raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 64<<20 || string(got[:len(content)]) != string(content) || strings.Trim(string(got[4<<20:]), "\x00") != "" {
				t.Errorf("%s disk: %d bytes; want the image, then zeros to 64 MiB", mode, len(got))
			}

			o.RunDir, o.DiskSize = t.TempDir(), 1<<20
			if _, err := prepareDisk(context.Background(), o); err == nil || !strings.Contains(err.Error(), "smaller than the image") {
				t.Errorf("a disk smaller than the image: %v", err)
			}
		})
	}
}

// consoleLines returns the console lines that contain every one of subs.
func consoleLines(console string, subs ...string) []string {
	var out []string
	for _, l := range strings.Split(console, "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}
