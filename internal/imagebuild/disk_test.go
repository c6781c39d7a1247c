package imagebuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/boot/localfs"
	"github.com/gantry-os/gantry/internal/testsupport"
)

// TestMakeDiskLeavesWritablePartitionsEmpty: the disk images have set A
// filled and PRIVATE and DATA as holes (no data extent at all), which the
// node formats at first boot; the preferred data partition is named
// GANTRY-DATA; two runs give the same bytes.
func TestMakeDiskLeavesWritablePartitionsEmpty(t *testing.T) {
	for _, plan := range []disklayout.PartitionPlan{disklayout.Unified, disklayout.Split} {
		t.Run(string(plan), func(t *testing.T) {
			dir := t.TempDir()
			images := map[string][]byte{}
			for _, n := range []string{"esp.img", "boot.img", "root.img", "hash.img"} {
				images[n] = bytes.Repeat([]byte(n), 1000)
				if err := os.WriteFile(filepath.Join(dir, n), images[n], 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var sums [][]byte
			var out, dataOut string
			for run := range 2 {
				l, err := disklayout.Plan(disklayout.Options{OSImageGiB: 1, DataImageGiB: 1, PartitionPlan: plan,
					Rand: disklayout.SeededRand([]byte("disk-test"))})
				if err != nil {
					t.Fatal(err)
				}
				out, dataOut = filepath.Join(dir, "os.img"), filepath.Join(dir, "data.img")
				if err := makeDisk(context.Background(), dir, diskOptions{layout: l, esp: filepath.Join(dir, "esp.img"),
					boot: filepath.Join(dir, "boot.img"), root: filepath.Join(dir, "root.img"), hash: filepath.Join(dir, "hash.img"),
					out: out, dataOut: dataOut}); err != nil {
					t.Fatal(err)
				}
				h := extentHash{sha256.New()}
				for _, img := range []string{out, dataOut} {
					if _, err := os.Stat(img); err == nil {
						size, err := copySparse(h, img, 0)
						if err != nil {
							t.Fatal(err)
						}
						fmt.Fprintf(h.h, "size %d\n", size)
					}
				}
				sums = append(sums, h.h.Sum(nil))
				if run == 0 && plan == disklayout.Unified {
					if _, err := os.Stat(dataOut); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("unified plan wrote a data disk: %v", err)
					}
				}
			}
			if !bytes.Equal(sums[0], sums[1]) {
				t.Error("two runs wrote different images")
			}

			osTab, err := disklayout.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			setA, err := osTab.Partitions().Set(disklayout.SetA)
			if err != nil {
				t.Fatal(err)
			}
			sec, err := disklayout.OpenPartition(out, setA.Root.Number, os.O_RDONLY)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(images["root.img"]))
			sec.ReadAt(got, 0)
			sec.Close()
			if !bytes.Equal(got, images["root.img"]) {
				t.Error("ROOT-A does not hold root.img")
			}

			priv, err := osTab.Partitions().Private()
			if err != nil {
				t.Fatal(err)
			}
			dataImg := out
			if plan == disklayout.Split {
				dataImg = dataOut
			}
			dataTab, err := disklayout.ReadFile(dataImg)
			if err != nil {
				t.Fatal(err)
			}
			data, ok := dataTab.Partitions().ByName(disklayout.NameData)
			if !ok || data.GUID != disklayout.DataPreferredGUID {
				t.Fatalf("no preferred data partition named %s: %+v", disklayout.NameData, dataTab.Partitions())
			}
			for _, c := range []struct {
				img  string
				part disklayout.Partition
			}{{out, priv}, {dataImg, data}} {
				if off, ok := firstData(t, c.img, c.part.Start); ok && off < c.part.End() {
					t.Errorf("%s: data at byte %d of the partition; want it empty", c.part.Name, off-c.part.Start)
				}
				sec, err := disklayout.OpenPartition(c.img, c.part.Number, os.O_RDONLY)
				if err != nil {
					t.Fatal(err)
				}
				st, err := localfs.Inspect(sec, c.part.Size, c.part.Name)
				sec.Close()
				if err != nil || st != localfs.StateEmpty {
					t.Errorf("%s: localfs sees %v (%v), want empty", c.part.Name, st, err)
				}
			}
		})
	}
}

// extentHash hashes what copySparse writes, with the offsets: the data of
// a sparse image without reading its holes.
type extentHash struct{ h hash.Hash }

func (e extentHash) WriteAt(b []byte, off int64) (int, error) {
	fmt.Fprintf(e.h, "%d:", off)
	return e.h.Write(b)
}

// firstData returns the offset of the first data extent of path at or after
// off (SEEK_DATA); ok is false when only a hole follows.
func firstData(t *testing.T, path string, off int64) (int64, bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := f.Seek(off, seekData)
	if errors.Is(err, syscall.ENXIO) {
		return 0, false
	}
	if err != nil {
		testsupport.Missing(t, fmt.Sprintf("no SEEK_DATA here: %v", err), "a TMPDIR on a file system with SEEK_DATA (ext4, xfs, tmpfs)")
	}
	return n, true
}
