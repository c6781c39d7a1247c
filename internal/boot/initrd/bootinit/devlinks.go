package bootinit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LinkPartitions makes udev's /dev/disk/by-partlabel/<GPT name> and
// /dev/disk/by-partuuid/<GPT unique GUID> links for the OS disk's
// partitions under devDir. The node has no udev: these links are what
// libblkid looks at first when mount(8) resolves PARTLABEL= (the data
// partition's mount units), which otherwise probes every block device. The
// links are relative (../../vda7), so they stay right when devtmpfs moves
// into the new root. An existing link is replaced; a name that cannot be a
// file name (empty, "/", "." or "..") gets no link.
func LinkPartitions(devDir string, d *Disk) error {
	for _, gp := range d.Partitions {
		kp, ok := d.parts[gp.Number]
		if !ok {
			continue
		}
		target := filepath.Join("..", "..", kp.Name)
		for _, l := range []struct{ dir, name string }{
			{"by-partlabel", gp.Name},
			{"by-partuuid", strings.ToLower(gp.GUID)},
		} {
			if l.name == "" || l.name == "." || l.name == ".." || strings.Contains(l.name, "/") {
				continue
			}
			dir := filepath.Join(devDir, "disk", l.dir)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("partition links: %w", err)
			}
			link := filepath.Join(dir, l.name)
			if err := os.Remove(link); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("partition links: %w", err)
			}
			if err := os.Symlink(target, link); err != nil {
				return fmt.Errorf("partition links: %w", err)
			}
		}
	}
	return nil
}
