package bootinit

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// EtcSkel is where the image keeps the initial contents of /etc, relative to
// the root: /etc is a tmpfs filled from here at every boot.
const EtcSkel = "usr/share/gantry/etc-skel"

// CopyTree copies the directory tree src into the existing directory dst:
// directories, regular files and symbolic links, with their permission bits
// and owners. Anything else (devices, sockets) is an error: /etc has none.
func CopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("copy %s: %w", p, err)
		}
		switch {
		case fi.IsDir():
			if rel != "." {
				if err := os.Mkdir(target, 0o700); err != nil && !os.IsExist(err) {
					return fmt.Errorf("copy %s: %w", p, err)
				}
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("copy %s: %w", p, err)
			}
			if err := os.Symlink(link, target); err != nil {
				return fmt.Errorf("copy %s: %w", p, err)
			}
		case fi.Mode().IsRegular():
			if err := copyFile(p, target); err != nil {
				return fmt.Errorf("copy %s: %w", p, err)
			}
		default:
			return fmt.Errorf("copy %s: unsupported file type %s", p, fi.Mode().Type())
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
				return fmt.Errorf("copy %s: %w", p, err)
			}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			// Chmod after Chown: chown clears the set-id bits.
			if err := os.Chmod(target, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
				return fmt.Errorf("copy %s: %w", p, err)
			}
		}
		return nil
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
