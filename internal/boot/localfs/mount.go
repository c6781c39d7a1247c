package localfs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
)

// Mount is one of the node's writable mounts. The mount units
// (local.mount, var.mount, opt.mount, mnt.mount, var-lib-gantry.mount) name
// the same: prepare-local-fs --mount makes them with mount(2) right after
// the partitions are ready, which spares the boot five runs of mount(8),
// and systemd finds them mounted. Without --mount, or for one it could not
// make, the units mount as before.
type Mount struct {
	// Source is a partition link (LinkDir/<GPT name>) or, for a bind
	// mount, a folder.
	Source, Target string
	// Bind marks a bind mount; otherwise it is ext4 with nosuid, nodev and
	// noatime, as the units' Options say.
	Bind bool
	// Mkdir makes the target first (the units' x-mount.mkdir).
	Mkdir bool
}

// NodeMounts are the mounts of a node, in order: DATA on /local, its var,
// opt and mnt bound on /var, /opt and /mnt, then PRIVATE on /var/lib/gantry
// (whose mount point is on DATA).
func NodeMounts(linkDir string) []Mount {
	return []Mount{
		{Source: filepath.Join(linkDir, disklayout.NameData), Target: "/local"},
		{Source: "/local/var", Target: "/var", Bind: true},
		{Source: "/local/opt", Target: "/opt", Bind: true},
		{Source: "/local/mnt", Target: "/mnt", Bind: true},
		{Source: filepath.Join(linkDir, disklayout.NamePrivate), Target: "/var/lib/gantry", Mkdir: true},
	}
}

// mounter makes mounts; the Linux one calls mount(2).
type mounter interface {
	// mounted lists the mount points now mounted.
	mounted() (map[string]bool, error)
	mount(m Mount) error
}

// mountAll makes each mount that is not mounted yet, in order, and stops
// at the first error (the units then try, and fail visibly).
func mountAll(ctx context.Context, mt mounter, mounts []Mount) (made []string, err error) {
	have, err := mt.mounted()
	if err != nil {
		return nil, fmt.Errorf("mounts: %w", err)
	}
	for _, m := range mounts {
		if err := ctx.Err(); err != nil {
			return made, err
		}
		if have[m.Target] {
			continue
		}
		if err := mt.mount(m); err != nil {
			return made, fmt.Errorf("mount %s on %s: %w", m.Source, m.Target, err)
		}
		made = append(made, m.Target)
	}
	return made, nil
}

// parseMountinfo returns the mount points of a /proc/self/mountinfo.
func parseMountinfo(r io.Reader) (map[string]bool, error) {
	out := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		out[unescapeMountinfo(f[4])] = true
	}
	return out, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a
// mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// readMountinfo reads this process's mount table.
func readMountinfo() (map[string]bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountinfo(f)
}
