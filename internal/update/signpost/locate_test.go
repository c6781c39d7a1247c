package signpost

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
)

// fakeSysfs builds the parts of /sys that FindRootPartition reads, for a node
// whose root is dm-0 (253:0) over nvme0n1p4 and nvme0n1p5 (ROOT-A, HASH-A).
func fakeSysfs(t *testing.T) string {
	t.Helper()
	sys := t.TempDir()
	disk := "devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1"
	mk := func(dir string) {
		if err := os.MkdirAll(filepath.Join(sys, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		mk(filepath.Dir(name))
		if err := os.Symlink(target, filepath.Join(sys, name)); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(sys, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"4", "5"} {
		mk(disk + "/nvme0n1p" + p)
		write(disk+"/nvme0n1p"+p+"/partition", p+"\n")
		link("../../"+disk+"/nvme0n1p"+p, "class/block/nvme0n1p"+p)
		link("../../../../../"+disk+"/nvme0n1p"+p, "devices/virtual/block/dm-0/slaves/nvme0n1p"+p)
	}
	link("../../"+disk+"/nvme0n1p4", "dev/block/259:4")
	link("../../"+disk, "dev/block/259:0")
	link("../../"+disk, "class/block/nvme0n1")
	link("../../devices/virtual/block/dm-0", "dev/block/253:0")
	mk("devices/virtual/block/dm-1")
	link("../../devices/virtual/block/dm-1", "dev/block/253:1")
	link("../../devices/virtual/block/dm-1", "class/block/dm-1")
	return sys
}

func TestFindRootPartition(t *testing.T) {
	sys := fakeSysfs(t)
	tests := []struct {
		name         string
		major, minor uint32
		want         RootPartition
		wantErr      string
	}{
		{"dm-verity root", 253, 0, RootPartition{Disk: "/dev/nvme0n1", Name: "nvme0n1p4", Number: 4}, ""},
		{"root on a partition", 259, 4, RootPartition{Disk: "/dev/nvme0n1", Name: "nvme0n1p4", Number: 4}, ""},
		{"root on a whole disk", 259, 0, RootPartition{}, "nvme0n1 (under the root file system) is not a partition"},
		{"dm device without slaves", 253, 1, RootPartition{}, "dm-1 (under the root file system) is not a partition"},
		{"unknown device", 8, 1, RootPartition{}, "device 8:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FindRootPartition(sys, tt.major, tt.minor)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestLoadWithRoot(t *testing.T) {
	img := newImage(t, disklayout.Options{})
	tests := []struct {
		num     int
		want    disklayout.SetID
		wantErr string
	}{
		{4, A, ""},  // ROOT-A
		{5, A, ""},  // HASH-A
		{9, B, ""},  // ROOT-B
		{10, B, ""}, // HASH-B
		{12, "", "partition 12 (p12), which is in no partition set"},
	}
	for _, tt := range tests {
		s, err := loadWithRoot(RootPartition{Disk: img, Name: fmt.Sprintf("p%d", tt.num), Number: tt.num})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("root on %d: error %v, want %q", tt.num, err, tt.wantErr)
			}
			continue
		}
		if err != nil || s.Active() != tt.want {
			t.Errorf("root on %d: active %v, %v; want %s", tt.num, s, err, tt.want)
		}
	}
}
