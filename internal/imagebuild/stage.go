package imagebuild

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/gantry-os/gantry/internal/procgroup"
)

// mergedDirs are the top-level folders that the /usr merge turns into links
// to their /usr counterparts; package files under them land in /usr.
var mergedDirs = map[string]bool{"bin": true, "sbin": true, "lib": true, "lib32": true, "lib64": true, "libx32": true}

// stage is the root filesystem being assembled. Every change goes through
// an os.Root, so nothing a package ships (absolute or escaping links) can
// make the build write outside the tree.
type stage struct {
	dir  string
	root *os.Root
	// dirModes are the packaged modes of the folders, applied at the end
	// (folders stay writable for the builder until then).
	dirModes map[string]fs.FileMode
	// foreignOwners are the packaged paths whose owner is not root; the
	// image flattens ownership to root.
	foreignOwners []string
}

func newStage(dir string) (*stage, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("staging tree: %w", err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("staging tree: %w", err)
	}
	s := &stage{dir: dir, root: r, dirModes: map[string]fs.FileMode{}}
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		if err := s.mkdirAll("usr/"+d, 0o755); err != nil {
			return nil, err
		}
		if err := s.symlink("usr/"+d, d); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *stage) close() { s.root.Close() }

// abs is the host path of a tree path (for helper programs only).
func (s *stage) abs(rel string) string { return filepath.Join(s.dir, filepath.FromSlash(rel)) }

// stagePath maps a path from a package (./lib/x, /usr/bin/y) to its place in
// the tree, relative and /usr-merged; "" is the tree's root.
func stagePath(name string) string {
	p := path.Clean("/" + name)[1:]
	first, _, _ := strings.Cut(p, "/")
	if mergedDirs[first] {
		p = "usr/" + p
	}
	return p
}

func (s *stage) mkdirAll(rel string, mode fs.FileMode) error {
	if rel == "" {
		return nil
	}
	if err := s.root.MkdirAll(rel, mode.Perm()|0o700); err != nil {
		return fmt.Errorf("staging tree: mkdir /%s: %w", rel, err)
	}
	return nil
}

// clear removes whatever is at rel (not a folder) so it can be replaced.
func (s *stage) clear(rel string) error {
	fi, err := s.root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("staging tree: /%s: %w", rel, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("staging tree: /%s is a folder and cannot be replaced by a file or link", rel)
	}
	if err := s.root.Remove(rel); err != nil {
		return fmt.Errorf("staging tree: %w", err)
	}
	return nil
}

// writeFile writes a file, replacing a file or link there.
func (s *stage) writeFile(rel string, data []byte, mode fs.FileMode) error {
	return s.writeFrom(rel, strings.NewReader(string(data)), mode)
}

func (s *stage) writeFrom(rel string, r io.Reader, mode fs.FileMode) error {
	if err := s.mkdirAll(path.Dir(rel), 0o755); err != nil {
		return err
	}
	if err := s.clear(rel); err != nil {
		return err
	}
	f, err := s.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("staging tree: %w", err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("staging tree: write /%s: %w", rel, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("staging tree: write /%s: %w", rel, err)
	}
	if err := s.root.Chmod(rel, mode); err != nil {
		return fmt.Errorf("staging tree: %w", err)
	}
	return nil
}

// copyIn copies a host file into the tree.
func (s *stage) copyIn(src, rel string, mode fs.FileMode) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("staging tree: %w", err)
	}
	defer f.Close()
	return s.writeFrom(rel, f, mode)
}

// symlink makes rel a link to target, replacing a file or link there.
func (s *stage) symlink(target, rel string) error {
	if err := s.mkdirAll(path.Dir(rel), 0o755); err != nil {
		return err
	}
	if err := s.clear(rel); err != nil {
		return err
	}
	if err := s.root.Symlink(target, rel); err != nil {
		return fmt.Errorf("staging tree: %w", err)
	}
	return nil
}

// exists reports whether rel exists (without following a final link).
func (s *stage) exists(rel string) bool {
	_, err := s.root.Lstat(rel)
	return err == nil
}

// resolve follows links as the running system would (absolute targets
// from the tree's root) and returns the tree path rel leads to, which may
// not exist. It fails on a loop.
func (s *stage) resolve(rel string) (string, error) {
	todo := strings.Split(path.Clean("/" + rel)[1:], "/")
	var cur []string
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) > 0 {
				cur = cur[:len(cur)-1]
			}
			continue
		}
		next := strings.Join(append(cur, c), "/")
		fi, err := s.root.Lstat(next)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = append(cur, c)
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("staging tree: too many links resolving /%s", rel)
		}
		t, err := s.root.Readlink(next)
		if err != nil {
			return "", fmt.Errorf("staging tree: %w", err)
		}
		if strings.HasPrefix(t, "/") {
			cur = nil
		}
		todo = append(strings.Split(strings.Trim(t, "/"), "/"), todo...)
	}
	return strings.Join(cur, "/"), nil
}

// readFile reads a file, following links as the running system would.
func (s *stage) readFile(rel string) ([]byte, error) {
	r, err := s.resolve(rel)
	if err != nil {
		return nil, err
	}
	return s.root.ReadFile(r)
}

// walk visits the tree in lexical order without following links; paths
// are relative with slashes.
func (s *stage) walk(fn func(rel string, d fs.DirEntry) error) error {
	return fs.WalkDir(os.DirFS(s.dir), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("staging tree: %w", err)
		}
		if p == "." {
			return nil
		}
		return fn(p, d)
	})
}

// extractDeb unpacks a .deb's data archive into the tree: dpkg-deb writes
// the tar, Go places every entry (modes, set-id bits, links and hard links
// kept; /usr merged). No maintainer script runs.
func (s *stage) extractDeb(ctx context.Context, deb string) (err error) {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	procgroup.Configure(cmd)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("extract %s: %w", filepath.Base(deb), err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("extract %s: %w", filepath.Base(deb), err)
	}
	defer func() {
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return
		}
		if werr := cmd.Wait(); werr != nil {
			err = fmt.Errorf("extract %s: dpkg-deb --fsys-tarfile: %w%s", filepath.Base(deb), werr, tail(stderr.String()))
		}
	}()
	tr := tar.NewReader(out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("extract %s: %w", filepath.Base(deb), err)
		}
		if err := s.place(h, tr); err != nil {
			return fmt.Errorf("extract %s: %s: %w", filepath.Base(deb), h.Name, err)
		}
	}
}

// place writes one tar entry into the tree.
func (s *stage) place(h *tar.Header, r io.Reader) error {
	rel := stagePath(h.Name)
	if rel == "" {
		return nil
	}
	if h.Uid != 0 || h.Gid != 0 {
		s.foreignOwners = append(s.foreignOwners, "/"+rel)
	}
	mode := h.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	switch h.Typeflag {
	case tar.TypeDir:
		if err := s.mkdirAll(rel, 0o755); err != nil {
			return err
		}
		fi, err := s.root.Lstat(rel)
		if err != nil {
			return fmt.Errorf("staging tree: %w", err)
		}
		// As dpkg: a folder that exists keeps its mode.
		if _, seen := s.dirModes[rel]; fi.IsDir() && !seen {
			s.dirModes[rel] = mode
		}
		return nil
	case tar.TypeReg:
		return s.writeFrom(rel, r, mode)
	case tar.TypeSymlink:
		// base-files ships the /usr merge's own links (/bin -> usr/bin);
		// the tree has them from the start.
		if top := path.Clean("/" + h.Name)[1:]; mergedDirs[top] && path.Clean(h.Linkname) == "usr/"+top {
			return nil
		}
		return s.symlink(h.Linkname, rel)
	case tar.TypeLink:
		target := stagePath(h.Linkname)
		if err := s.mkdirAll(path.Dir(rel), 0o755); err != nil {
			return err
		}
		if err := s.clear(rel); err != nil {
			return err
		}
		if err := s.root.Link(target, rel); err != nil {
			return fmt.Errorf("staging tree: hard link: %w", err)
		}
		return nil
	}
	return fmt.Errorf("unsupported tar entry type %q", h.Typeflag)
}

// finish applies the packaged folder modes and adds the /usr-merge links
// for the optional library folders that packages filled.
func (s *stage) finish() error {
	for _, d := range []string{"lib32", "libx32"} {
		if fi, err := s.root.Lstat("usr/" + d); err == nil && fi.IsDir() && !s.exists(d) {
			if err := s.symlink("usr/"+d, d); err != nil {
				return err
			}
		}
	}
	rels := make([]string, 0, len(s.dirModes))
	for rel := range s.dirModes {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	for _, rel := range rels {
		fi, err := s.root.Lstat(rel)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("staging tree: %w", err)
		}
		if fi.IsDir() {
			if err := s.root.Chmod(rel, s.dirModes[rel]); err != nil {
				return fmt.Errorf("staging tree: %w", err)
			}
		}
	}
	return nil
}

// size sums the sizes of the tree's regular files (hard links once).
func (s *stage) size() (files int, bytes int64, err error) {
	seen := map[uint64]bool{}
	err = s.walk(func(rel string, d fs.DirEntry) error {
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if ino, ok := inode(fi); ok {
			if seen[ino] {
				return nil
			}
			seen[ino] = true
		}
		files++
		bytes += fi.Size()
		return nil
	})
	return files, bytes, err
}

// inode returns a file's inode number, to count hard links once.
func inode(fi fs.FileInfo) (uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Ino, true
}
