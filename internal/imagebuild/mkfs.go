package imagebuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// erofsOptions are the inputs of the root filesystem.
type erofsOptions struct {
	compression string // mkfs.erofs -z
	clusterKiB  int    // -C in KiB
	epoch       int64
	uuid        string
}

// makeErofs makes the read-only root: every file owned by root, every
// timestamp the build epoch, no extended attributes from the build host,
// a fixed UUID. The result depends only on the tree.
func makeErofs(ctx context.Context, tree, out string, o erofsOptions) error {
	if err := needTool("mkfs.erofs", "erofs-utils"); err != nil {
		return fmt.Errorf("root filesystem: %w", err)
	}
	os.Remove(out)
	args := []string{
		"-z" + o.compression,
		"-C" + strconv.Itoa(o.clusterKiB*1024),
		"-T" + strconv.FormatInt(o.epoch, 10),
		"-U" + o.uuid,
		"--all-root",
		"-x-1",
		"--quiet",
		out, tree,
	}
	if _, err := (command{name: "mkfs.erofs", args: args}).run(ctx); err != nil {
		return fmt.Errorf("root filesystem: %w", err)
	}
	return nil
}

// ext4Options are the inputs of an ext4 filesystem image.
type ext4Options struct {
	label    string
	size     int64
	uuid     string
	hashSeed string
	epoch    int64
	// extra are further mke2fs options (-m 0, -i 4096, -O ^has_journal).
	extra []string
	// files are copied into the filesystem's root folder (name → host
	// path); nil makes an empty filesystem.
	files map[string]string
}

// mke2fsConf pins the ext4 features and geometry, so that the host's
// /etc/mke2fs.conf cannot change the images.
const mke2fsConf = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
	reserved_ratio = 5.0

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
	default = {
		inode_ratio = 16384
	}
`

// makeExt4 makes an ext4 image of o.size bytes at out, reproducibly:
// mke2fs with a fixed UUID, hash seed and clock (E2FSPROGS_FAKE_TIME), then
// debugfs sets every inode's owner to root and its times to the epoch
// (mke2fs -d copies the ctime of the source files, which cannot be set).
func makeExt4(ctx context.Context, work, out string, o ext4Options) error {
	for _, t := range []string{"mkfs.ext4", "debugfs"} {
		if err := needTool(t, "e2fsprogs"); err != nil {
			return fmt.Errorf("ext4 %s: %w", o.label, err)
		}
	}
	os.Remove(out)
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("ext4 %s: %w", o.label, err)
	}
	if err := f.Truncate(o.size); err != nil {
		f.Close()
		return fmt.Errorf("ext4 %s: %w", o.label, err)
	}
	f.Close()
	conf := filepath.Join(work, "mke2fs.conf")
	if err := os.WriteFile(conf, []byte(mke2fsConf), 0o644); err != nil {
		return fmt.Errorf("ext4 %s: %w", o.label, err)
	}
	env := []string{"E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(o.epoch, 10), "MKE2FS_CONFIG=" + conf}
	args := []string{"-q", "-F", "-t", "ext4", "-T", "default", "-L", o.label, "-U", o.uuid,
		"-E", "hash_seed=" + o.hashSeed + ",root_owner=0:0,nodiscard"}
	args = append(args, o.extra...)
	var names []string
	if o.files != nil {
		dir, err := os.MkdirTemp(work, "ext4-")
		if err != nil {
			return fmt.Errorf("ext4 %s: %w", o.label, err)
		}
		defer os.RemoveAll(dir)
		for _, n := range sortedKeys(o.files) {
			if err := copyFile(o.files[n], filepath.Join(dir, n), 0o644); err != nil {
				return fmt.Errorf("ext4 %s: %w", o.label, err)
			}
			names = append(names, n)
		}
		args = append(args, "-d", dir)
	}
	args = append(args, out)
	if _, err := (command{name: "mkfs.ext4", args: args, env: env}).run(ctx); err != nil {
		return fmt.Errorf("ext4 %s: %w", o.label, err)
	}
	// Normalize owners and times of every inode the build made.
	var script bytes.Buffer
	when := "@" + strconv.FormatInt(o.epoch, 10)
	for _, p := range append([]string{"/", "/lost+found"}, prefixAll("/", names)...) {
		for _, field := range []string{"uid 0", "gid 0", "atime " + when, "mtime " + when, "ctime " + when, "crtime " + when} {
			fmt.Fprintf(&script, "set_inode_field %s %s\n", p, field)
		}
	}
	sf := filepath.Join(work, "debugfs-"+o.label+".txt")
	if err := os.WriteFile(sf, script.Bytes(), 0o644); err != nil {
		return fmt.Errorf("ext4 %s: %w", o.label, err)
	}
	defer os.Remove(sf)
	outb, err := (command{name: "debugfs", args: []string{"-w", "-f", sf, out}, env: env}).run(ctx)
	if err != nil {
		return fmt.Errorf("ext4 %s: %w", o.label, err)
	}
	if bytes.Contains(outb, []byte("set_inode_field: ")) {
		return fmt.Errorf("ext4 %s: debugfs: %s", o.label, strings.TrimSpace(string(outb)))
	}
	return nil
}

func prefixAll(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	sort.Strings(out)
	return out
}

// Whence values of lseek(2) that find the data and the holes of a sparse
// file (Linux, and other systems that have them; elsewhere the copy reads
// everything).
const (
	seekData = 3
	seekHole = 4
)

// copySparse writes the file src into w at offset off, skipping the holes
// of src and blocks of zeros (the destination is a new, sparse image whose
// holes read as zero). It returns src's size.
func copySparse(w io.WriterAt, src string, off int64) (int64, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	buf := make([]byte, 1<<20)
	for pos := int64(0); pos < size; {
		start, err := f.Seek(pos, seekData)
		if err != nil {
			// ENXIO: no data after pos; any other error: no hole
			// support, so copy from pos.
			if errors.Is(err, syscall.ENXIO) {
				break
			}
			start = pos
		}
		end, err := f.Seek(start, seekHole)
		if err != nil || end <= start {
			end = size
		}
		for p := start; p < end; {
			n := int64(len(buf))
			if end-p < n {
				n = end - p
			}
			k, err := f.ReadAt(buf[:n], p)
			if k > 0 && !allZero(buf[:k]) {
				if _, werr := w.WriteAt(buf[:k], off+p); werr != nil {
					return 0, werr
				}
			}
			p += int64(k)
			if err == io.EOF {
				break
			}
			if err != nil {
				return 0, err
			}
		}
		pos = end
	}
	return size, nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
