package imagebuild

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCopySparse(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	data := make([]byte, 3<<20+100)
	copy(data[10:], "head")
	copy(data[2<<20+5:], "middle")
	copy(data[len(data)-4:], "tail")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := dst.Truncate(8 << 20); err != nil {
		t.Fatal(err)
	}
	n, err := copySparse(dst, src, 4096)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("copySparse = %d, %v", n, err)
	}
	got := make([]byte, len(data))
	if _, err := dst.ReadAt(got, 4096); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Error("copied data differs")
	}
}

// Two ext4 images made from the same inputs are identical, even when the
// source files' change times differ (mke2fs -d copies them).
func TestMakeExt4Reproducible(t *testing.T) {
	needTools(t, "mkfs.ext4", "debugfs")
	ctx := context.Background()
	work := t.TempDir()
	src := filepath.Join(work, "vmlinuz")
	o := ext4Options{label: "GANTRY-BOOT", size: 8 << 20, uuid: "11111111-2222-4333-8444-555555555555",
		hashSeed: "11111111-2222-4333-8444-666666666666", epoch: 1700000000, extra: []string{"-O", "^has_journal"},
		files: map[string]string{"vmlinuz": src, "cmdline": src}}
	var images [][]byte
	for i := 0; i < 2; i++ {
		if err := os.WriteFile(src, []byte("kernel bytes"), 0o600); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(work, "boot.img")
		if err := makeExt4(ctx, work, out, o); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, data)
		time.Sleep(1100 * time.Millisecond) // a different ctime for the source
	}
	if !bytes.Equal(images[0], images[1]) {
		t.Fatal("two ext4 images of the same inputs differ")
	}
	out, err := exec.Command("debugfs", "-R", "ls -l /", filepath.Join(work, "boot.img")).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"vmlinuz", "cmdline", "lost+found"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("boot image lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "  1000 ") {
		t.Errorf("a file is not owned by root:\n%s", out)
	}
	label, err := exec.Command("e2label", filepath.Join(work, "boot.img")).Output()
	if err == nil && strings.TrimSpace(string(label)) != "GANTRY-BOOT" {
		t.Errorf("label %q", label)
	}
}

func TestMakeErofsReproducible(t *testing.T) {
	needTools(t, "mkfs.erofs")
	ctx := context.Background()
	work := t.TempDir()
	tree := filepath.Join(work, "tree")
	var images [][]byte
	for i := 0; i < 2; i++ {
		os.RemoveAll(tree)
		for _, f := range []string{"usr/bin/a", "etc/b", "usr/share/c"} {
			p := filepath.Join(tree, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, bytes.Repeat([]byte(f), 5000), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out := filepath.Join(work, "root.img")
		if err := makeErofs(ctx, tree, out, erofsOptions{compression: "lz4hc", clusterKiB: 256, epoch: 1700000000,
			uuid: "11111111-2222-4333-8444-555555555555"}); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, data)
		time.Sleep(1100 * time.Millisecond)
	}
	if !bytes.Equal(images[0], images[1]) {
		t.Fatal("two erofs images of the same tree differ")
	}
}
