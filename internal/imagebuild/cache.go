package imagebuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/pkg/durable"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// DefaultCacheDir is where builds keep .debs and apt's private roots unless
// told otherwise: <user cache dir>/gantry.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("default cache folder: %w (pass --cache)", err)
	}
	return filepath.Join(d, "gantry"), nil
}

// debCache is the build cache: debs/<sha256>.deb, content-addressed, and
// apt/<key>/, the private apt roots. One build at a time uses it.
type debCache struct {
	dir string
}

// openCache creates the cache folder and takes its lock, waiting for
// another build to finish with it. The returned function releases it.
func openCache(ctx context.Context, dir string, wait func()) (*debCache, func(), error) {
	if err := os.MkdirAll(filepath.Join(dir, "debs"), 0o755); err != nil {
		return nil, nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("cache lock: %w", err)
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, nil, fmt.Errorf("lock cache %s: %w", dir, err)
		}
		if !told && wait != nil {
			wait()
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return &debCache{dir: dir}, func() { f.Close() }, nil
}

// openStore opens a package store: a folder laid out as the cache's debs/
// (debs/<sha256>.deb) plus locks/, the locks it answers. create makes it;
// otherwise it must exist. A store has no lock of its own: it is only added
// to, by content.
func openStore(dir string, create bool) (*debCache, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("package store %s: %w", dir, err)
	}
	if create {
		if err := os.MkdirAll(filepath.Join(abs, "debs"), 0o755); err != nil {
			return nil, fmt.Errorf("package store: %w", err)
		}
	} else if fi, err := os.Stat(filepath.Join(abs, "debs")); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("package store %s: no debs/ folder (make one with gantry build --export-store)", abs)
	}
	return &debCache{dir: abs}, nil
}

// addLock records a lock the store answers, as locks/<name>.
func (c *debCache) addLock(name string, data []byte) error {
	dir := filepath.Join(c.dir, "locks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("package store: %w", err)
	}
	if err := durable.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		return fmt.Errorf("package store: %w", err)
	}
	return nil
}

// path is where the .deb with this SHA-256 lives.
func (c *debCache) path(sum string) string { return filepath.Join(c.dir, "debs", sum+".deb") }

// has reports whether the cache holds the .deb with this SHA-256, checking
// its content; a corrupt entry is removed.
func (c *debCache) has(sum string) (bool, error) {
	p := c.path(sum)
	got, _, err := hashFile(p)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cache: %w", err)
	}
	if got != sum {
		os.Remove(p)
		return false, nil
	}
	return true, nil
}

// add stores the file at src (by hard link when possible) and returns its
// SHA-256 and size.
func (c *debCache) add(src string) (string, int64, error) {
	sum, size, err := hashFile(src)
	if err != nil {
		return "", 0, fmt.Errorf("cache: %w", err)
	}
	dst := c.path(sum)
	if _, err := os.Stat(dst); err == nil {
		return sum, size, nil
	}
	tmp := dst + ".tmp"
	os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		if err := copyFile(src, tmp, 0o644); err != nil {
			return "", 0, fmt.Errorf("cache: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", 0, fmt.Errorf("cache: %w", err)
	}
	return sum, size, nil
}

// hashFile returns a file's SHA-256 (hex) and size.
func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// hashFiles hashes files concurrently (the disk images are large); it
// returns name → SHA-256 and size, in the order given.
func hashFiles(dir string, names []string) ([]Output, error) {
	outs := make([]Output, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, max(2, runtime.NumCPU()))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			sum, size, err := hashFile(filepath.Join(dir, n))
			outs[i], errs[i] = Output{Name: n, Size: size, SHA256: sum}, err
		}()
	}
	wg.Wait()
	return outs, errors.Join(errs...)
}

// copyFile copies a regular file to dst (replaced) with mode.
func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}
