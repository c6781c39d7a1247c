package localfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
)

// DefaultMkfs is mkfs.ext4 in the image (e2fsprogs). The image has no shell
// and systemd starts the unit with a minimal PATH, so it is named by path.
const DefaultMkfs = "/usr/sbin/mkfs.ext4"

// Spec is one partition to prepare.
type Spec struct {
	// Name is the partition's GPT name and the filesystem's final label.
	Name string
	// Kind is the partition kind the GPT entry must have.
	Kind disklayout.Kind
	// MkfsArgs are mkfs.ext4 options for this partition.
	MkfsArgs []string
	// Grow lets a partition that is its disk's last grow to the disk's end
	// before it is formatted.
	Grow bool
	// Dirs are directories (mode 0755, owned by root) the new filesystem
	// is made with (mkfs.ext4 -d), so that what mounts from it needs no
	// extra step at first boot.
	Dirs []string
}

// Specs are Gantry's writable partitions, in the order they are prepared.
// PRIVATE holds many small files (the datastore): one inode per 4 KiB.
// DATA reserves no blocks for root: everything on it is root's anyway.
func Specs() []Spec {
	return []Spec{
		{Name: disklayout.NamePrivate, Kind: disklayout.KindPrivate, MkfsArgs: []string{"-b", "4096", "-i", "4096", "-I", "256"}},
		// /var, /opt and /mnt are bind mounts of these (var.mount, ...).
		{Name: disklayout.NameData, Kind: disklayout.KindData, MkfsArgs: []string{"-m", "0"}, Grow: true, Dirs: []string{"var", "opt", "mnt"}},
	}
}

// Action is what Prepare did to one partition.
type Action string

// The actions.
const (
	// Kept: the partition already held a complete filesystem.
	Kept Action = "kept"
	// Formatted: a new filesystem was made.
	Formatted Action = "formatted"
)

// Result describes one prepared partition.
type Result struct {
	Name string
	// Device is the partition device, or the image file holding it.
	Device string
	// Before is what the partition held; Action what was done.
	Before State
	Action Action
	// Size is the partition's size after any growth, GrownFrom its size
	// before (zero when it did not grow).
	Size, GrownFrom int64
}

// partition is a partition to prepare: a device node (Offset 0), or a
// region of an image file.
type partition struct {
	spec Spec
	// disk is the whole disk (device node or image file) and entry its GPT
	// entry.
	disk  string
	entry disklayout.Partition
	// path is the file to open: the partition's device node, or disk.
	path   string
	offset int64
	size   int64
	// isDevice is set for block devices; sys and dev are then where the
	// kernel's partition devices are found.
	isDevice bool
	sys, dev string
}

// section is an open partition: offsets relative to its start.
type section struct {
	f   *os.File
	off int64
}

func (s section) ReadAt(b []byte, off int64) (int, error) { return s.f.ReadAt(b, s.off+off) }

func (s section) WriteAt(b []byte, off int64) (int, error) { return s.f.WriteAt(b, s.off+off) }

func (s section) Sync() error { return s.f.Sync() }

func (p *partition) open(flag int) (section, error) {
	f, err := os.OpenFile(p.path, flag, 0)
	if err != nil {
		return section{}, err
	}
	return section{f: f, off: p.offset}, nil
}

func (p *partition) inspect() (State, error) {
	s, err := p.open(os.O_RDONLY)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p.spec.Name, err)
	}
	defer s.f.Close()
	st, err := Inspect(s, p.size, p.spec.Name)
	if err != nil {
		return 0, fmt.Errorf("%s on %s: %w", p.spec.Name, p.path, err)
	}
	return st, nil
}

// prepare makes p hold a complete filesystem: nothing when it already does
// (apart from finishing the backups' labels), else grow (if allowed), mkfs
// with the pending label, sync, commit the final label.
func prepare(ctx context.Context, p *partition, mkfs string, log *slog.Logger) (Result, error) {
	res := Result{Name: p.spec.Name, Device: p.path, Size: p.size}
	st, err := p.inspect()
	if err != nil {
		return res, err
	}
	res.Before = st
	if st == StateReady {
		res.Action = Kept
		if err := finishBackups(p); err != nil {
			// The filesystem is complete; only e2fsck's fallback copies
			// are behind. Not worth failing the boot over.
			log.Warn("could not label the backup superblocks", "partition", p.spec.Name, "err", err)
		}
		return res, nil
	}
	log.Info("partition holds no complete filesystem; formatting it", "partition", p.spec.Name, "device", p.path, "found", st.String())
	if p.spec.Grow {
		from, err := grow(ctx, p, log)
		if err != nil {
			return res, fmt.Errorf("%s: grow: %w", p.spec.Name, err)
		}
		if from != 0 {
			res.GrownFrom, res.Size = from, p.size
		}
	}
	if err := runMkfs(ctx, mkfs, p); err != nil {
		return res, fmt.Errorf("%s: %w", p.spec.Name, err)
	}
	s, err := p.open(os.O_RDWR)
	if err != nil {
		return res, fmt.Errorf("%s: %w", p.spec.Name, err)
	}
	defer s.f.Close()
	// mke2fs flushes when it closes the device; sync again from here so
	// that nothing of the filesystem can land after the label.
	if err := s.Sync(); err != nil {
		return res, fmt.Errorf("%s: sync after mkfs: %w", p.spec.Name, err)
	}
	if err := commitLabel(s, p.spec.Name); err != nil {
		return res, fmt.Errorf("%s: commit label: %w", p.spec.Name, err)
	}
	if err := s.f.Close(); err != nil {
		return res, fmt.Errorf("%s: %w", p.spec.Name, err)
	}
	if st, err := p.inspect(); err != nil || st != StateReady {
		return res, fmt.Errorf("%s: after formatting the partition is %v (%v)", p.spec.Name, st, err)
	}
	res.Action = Formatted
	return res, nil
}

// finishBackups labels the backup superblocks of a complete filesystem, in
// case a crash came between the primary's label and theirs.
func finishBackups(p *partition) error {
	s, err := p.open(os.O_RDWR)
	if err != nil {
		return err
	}
	defer s.f.Close()
	sb, err := readSuperblock(s, sbOffset)
	if err != nil {
		return err
	}
	if err := labelBackups(s, sb, sb[sbUUID:sbUUID+16], p.spec.Name); err != nil {
		return err
	}
	return s.f.Close()
}

// runMkfs makes the filesystem with the pending label. An image file gets
// it at the partition's offset, with the size given explicitly. No discard:
// the partition reads as zeros on a new image, and a discard on a file with
// an offset must not touch the neighbours.
func runMkfs(ctx context.Context, mkfs string, p *partition) error {
	args := []string{"-q", "-F", "-t", "ext4", "-L", PendingLabel}
	// lazy_journal_init: mke2fs does not zero the journal (32 MiB on DATA),
	// which is most of its writing. Safe: journal blocks left from an
	// earlier filesystem fail the new one's journal checksums (their seed
	// is the journal superblock's UUID, which mke2fs sets to the new
	// filesystem's; with metadata_csum, Debian's default, the kernel
	// checksums the journal), so a replay never takes them.
	ext := "nodiscard,lazy_journal_init=1"
	if p.offset != 0 {
		ext += ",offset=" + strconv.FormatInt(p.offset, 10)
	}
	args = append(args, "-E", ext)
	args = append(args, p.spec.MkfsArgs...)
	if len(p.spec.Dirs) > 0 {
		skel, err := os.MkdirTemp("", "gantry-mkfs-")
		if err != nil {
			return fmt.Errorf("mkfs skeleton: %w", err)
		}
		defer os.RemoveAll(skel)
		for _, d := range p.spec.Dirs {
			if err := os.Mkdir(filepath.Join(skel, d), 0o755); err != nil {
				return fmt.Errorf("mkfs skeleton: %w", err)
			}
		}
		// The skeleton's own mode and owner become the root directory's.
		if err := os.Chmod(skel, 0o755); err != nil {
			return fmt.Errorf("mkfs skeleton: %w", err)
		}
		args = append(args, "-d", skel)
	}
	args = append(args, p.path, strconv.FormatInt(p.size/1024, 10)+"k")
	cmd := exec.CommandContext(ctx, mkfs, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Stdin = nil
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("%s %v: %w: %s", mkfs, args, err, bytes.TrimSpace(out.Bytes()))
		}
		return fmt.Errorf("mkfs: %w", err)
	}
	return nil
}
