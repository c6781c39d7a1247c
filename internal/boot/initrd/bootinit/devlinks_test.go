package bootinit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLinkPartitions(t *testing.T) {
	l := plan(t, false)
	f := newFakeSys(t)
	f.addDisk(t, "nvme0n1", &l.OS, "p", nil, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	d, err := FindDisk(ctx, f.Paths, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// A stale link from an earlier run is replaced.
	os.MkdirAll(filepath.Join(f.Dev, "disk/by-partlabel"), 0o755)
	os.Symlink("../../elsewhere", filepath.Join(f.Dev, "disk/by-partlabel/GANTRY-ROOT-A"))
	for i := 0; i < 2; i++ { // twice: idempotent
		if err := LinkPartitions(f.Dev, d); err != nil {
			t.Fatal(err)
		}
	}
	named := 0
	for _, gp := range d.Partitions {
		kp, _ := d.Partition(gp.Number)
		for dir, name := range map[string]string{"by-partlabel": gp.Name, "by-partuuid": strings.ToLower(gp.GUID)} {
			if name == "" {
				continue
			}
			link := filepath.Join(f.Dev, "disk", dir, name)
			target, err := os.Readlink(link)
			if err != nil {
				t.Errorf("%s: %v", link, err)
				continue
			}
			if target != "../../"+kp.Name {
				t.Errorf("%s -> %s, want ../../%s", link, target, kp.Name)
			}
			// The link resolves to the partition's node.
			if _, err := os.Stat(link); err != nil {
				t.Errorf("%s does not resolve: %v", link, err)
			}
		}
		if gp.Name != "" {
			named++
		}
	}
	if named < 5 {
		t.Fatalf("only %d named partitions in the plan", named)
	}
	ents, _ := os.ReadDir(filepath.Join(f.Dev, "disk/by-partlabel"))
	if len(ents) != named {
		t.Errorf("%d by-partlabel links, want %d", len(ents), named)
	}
}
