// Package migrator owns moving a node's datastore from the version it was
// written by to the version of the OS that is booting: reading the update
// manifest, finding the chain of migrations between two versions, running
// each migration binary on a fresh copy, and flipping the `current` link
// only after every step succeeded. A failure of any kind leaves `current`
// and the datastore it points at untouched.
package migrator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/pkg/durable"
	"github.com/gantry-os/gantry/pkg/version"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/gantry-os/gantry/internal/update/manifest"
	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/migration"
)

// DefaultStepTimeout bounds one migration binary's run when Options says
// nothing.
const DefaultStepTimeout = 5 * time.Minute

// IncompleteMarker is the file the migrator keeps in a datastore directory
// it is still writing. A directory that holds it and that no link points at
// is the leftover of an interrupted run, and the next run removes it.
const IncompleteMarker = ".migrator-incomplete"

// LockFile is the file in the base directory that the migrator holds an
// exclusive lock on while it runs.
const LockFile = ".migrator.lock"

// Options say what to migrate, to which version, and with what.
type Options struct {
	// Base is the datastore base directory, the one holding `current`.
	Base string
	// MigrationDir holds the migration binaries, named as in the manifest.
	MigrationDir string
	// ManifestPath is the manifest file. It is read only when the datastore's
	// version differs from Target.
	ManifestPath string
	// Target is the version to migrate to.
	Target version.Semver
	// OSRelease, when set, is passed to every migration as --os-release.
	OSRelease string
	// StepTimeout bounds each migration binary's run (0: DefaultStepTimeout).
	StepTimeout time.Duration
	// Logger receives progress and the migrations' output (nil: discard).
	Logger *slog.Logger
}

// Result says what Migrate did.
type Result struct {
	// FirstBoot is set when there was no datastore yet; nothing was done.
	FirstBoot bool
	// From is the datastore's version before, To the target.
	From, To version.Semver
	// Direction is Forward or Backward, or 0 when the versions were equal.
	Direction migration.Direction
	// Migrations are the migrations run, in order.
	Migrations []string
	// Dir is the datastore directory `current` resolves to afterwards.
	Dir string
	// Flipped is set when `current` now points at a new directory.
	Flipped bool
}

// ResolveBase returns the datastore base directory for a --datastore-path:
// the path itself, or its parent when it names the `current` link (as
// Bottlerocket's migrator is given it).
func ResolveBase(path string) string {
	path = filepath.Clean(path)
	if filepath.Base(path) == datastore.CurrentLink {
		return filepath.Dir(path)
	}
	return path
}

// Migrate brings the datastore under opts.Base to opts.Target.
//
// With no datastore yet (first boot) it does nothing. With the datastore
// already at the target it does nothing and does not read the manifest.
// Otherwise it finds the chain of migrations in the manifest; runs each
// migration binary with --forward or --backward on a fresh sibling
// directory v<target>_<random>, each step reading the previous step's output
// (intermediate directories are removed as soon as the next step is done);
// and finally points the link chain at the last output with
// datastore.LinkVersion. When the chain is empty the datastore is copied
// unchanged into a new directory instead, so that the directory's name
// always carries the version it is linked under.
//
// On any failure (a missing binary, a non-zero exit, a timeout, a signal,
// ctx being cancelled) the new directories are removed and `current` is left
// as it was. If the migrator itself is killed, its leftovers are removed by
// the next run.
func Migrate(ctx context.Context, opts Options) (Result, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	res := Result{To: opts.Target}
	base := opts.Base
	if _, err := os.Lstat(filepath.Join(base, datastore.CurrentLink)); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(base, datastore.DBFile)); err == nil {
			return res, fmt.Errorf("%s is a datastore directory; give the base directory that holds %q, or that link", base, datastore.CurrentLink)
		}
		log.Info("no datastore yet (first boot); nothing to migrate", "base", base)
		res.FirstBoot = true
		return res, nil
	} else if err != nil {
		return res, fmt.Errorf("datastore base %s: %w", base, err)
	}

	unlock, err := lockBase(base)
	if err != nil {
		return res, err
	}
	defer unlock()
	removeLeftovers(base, log)

	from, srcDir, err := datastore.CurrentVersion(base)
	if err != nil {
		return res, err
	}
	res.From, res.Dir = from, srcDir
	if from == opts.Target {
		log.Info("datastore is already at the target version; nothing to migrate", "version", from.String(), "dir", srcDir)
		return res, nil
	}
	res.Direction = migration.Forward
	if from.Compare(opts.Target) > 0 {
		res.Direction = migration.Backward
	}
	mf, err := manifest.Load(opts.ManifestPath)
	if err != nil {
		return res, err
	}
	names, err := mf.FindMigrations(from, opts.Target)
	if err != nil {
		return res, fmt.Errorf("migrate %s to %s: %w", from, opts.Target, err)
	}
	res.Migrations = names
	log.Info("migrating datastore", "from", from.String(), "to", opts.Target.String(),
		"direction", res.Direction.String(), "migrations", strings.Join(names, ","), "dir", srcDir)

	// Hold the source with a shared lock, so that nothing can write to it
	// while it is copied or migrated.
	src, err := datastore.Open(ctx, srcDir, datastore.OpenOptions{ReadOnly: true})
	if err != nil {
		return res, fmt.Errorf("open the datastore to migrate: %w", err)
	}
	defer src.Close()

	r := run{opts: opts, log: log, direction: res.Direction}
	final, err := r.steps(ctx, srcDir, names)
	if err != nil {
		r.removeAll()
		return res, err
	}
	if err := datastore.LinkVersion(base, opts.Target, final); err != nil {
		// LinkVersion renames `current` last, but an earlier link it renames
		// may already be on `current`'s chain; keep the new directory if
		// `current` reaches it.
		if _, now, cerr := datastore.CurrentVersion(base); cerr == nil && now == final {
			log.Error("links only partly flipped; current points at the new datastore", "dir", final, "error", err)
			r.forget(final)
		}
		r.removeAll()
		return res, fmt.Errorf("point %s at the migrated datastore: %w", datastore.CurrentLink, err)
	}
	res.Dir, res.Flipped = final, true
	if err := os.Remove(filepath.Join(final, IncompleteMarker)); err != nil {
		log.Warn("could not remove the in-progress marker", "dir", final, "error", err)
	}
	log.Info("datastore migrated", "from", from.String(), "to", opts.Target.String(), "dir", final)
	return res, nil
}

// run carries one migration run's new directories.
type run struct {
	opts      Options
	log       *slog.Logger
	direction migration.Direction
	created   []string // directories made and not yet removed
}

// steps produces the migrated datastore and returns its directory.
func (r *run) steps(ctx context.Context, srcDir string, names []string) (string, error) {
	if len(names) == 0 {
		dst, err := r.newDir()
		if err != nil {
			return "", err
		}
		if err := copyDatastore(ctx, srcDir, dst); err != nil {
			return "", fmt.Errorf("copy the datastore unchanged to %s: %w", dst, err)
		}
		r.log.Info("no migrations needed; copied the datastore", "dir", dst)
		return dst, nil
	}
	cur := srcDir
	for i, name := range names {
		dst, err := r.newDir()
		if err != nil {
			return "", err
		}
		if err := r.exec(ctx, name, cur, dst); err != nil {
			return "", fmt.Errorf("step %d of %d: %w", i+1, len(names), err)
		}
		if cur != srcDir {
			r.remove(cur)
		}
		cur = dst
	}
	return cur, nil
}

// newDir makes a fresh v<target>_<random> directory holding the marker.
func (r *run) newDir() (string, error) {
	dir, err := datastore.NewVersionDir(r.opts.Base, r.opts.Target)
	if err != nil {
		return "", err
	}
	r.created = append(r.created, dir)
	if err := os.WriteFile(filepath.Join(dir, IncompleteMarker), nil, 0o600); err != nil {
		return "", fmt.Errorf("mark %s in progress: %w", dir, err)
	}
	return dir, nil
}

func (r *run) remove(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		r.log.Warn("could not remove a migration directory", "dir", dir, "error", err)
	}
	r.forget(dir)
}

func (r *run) forget(dir string) {
	for i, d := range r.created {
		if d == dir {
			r.created = append(r.created[:i], r.created[i+1:]...)
			return
		}
	}
}

func (r *run) removeAll() {
	for len(r.created) > 0 {
		r.remove(r.created[len(r.created)-1])
	}
}

// exec runs one migration binary from src into dst. A migration as an
// update repository delivers it (NAME.zst, zstd-compressed, as updog caches
// it) is decompressed into a private directory first.
func (r *run) exec(ctx context.Context, name, src, dst string) error {
	bin := filepath.Join(r.opts.MigrationDir, name)
	fi, err := os.Stat(bin)
	if err != nil {
		return fmt.Errorf("migration %s: %w", name, err)
	}
	if strings.HasSuffix(name, ".zst") {
		dir, err := os.MkdirTemp("", "gantry-migration-")
		if err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
		defer os.RemoveAll(dir)
		if bin, err = decompressTo(bin, filepath.Join(dir, strings.TrimSuffix(name, ".zst"))); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	} else if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("migration %s: %s is not an executable file", name, bin)
	}
	timeout := r.opts.StepTimeout
	if timeout <= 0 {
		timeout = DefaultStepTimeout
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := []string{r.direction.Flag(), "--source-datastore", src, "--target-datastore", dst}
	if r.opts.OSRelease != "" {
		args = append(args, "--os-release", r.opts.OSRelease)
	}
	cmd := exec.CommandContext(sctx, bin, args...)
	out := &lineLog{log: r.log, name: name}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = 5 * time.Second
	r.log.Info("running migration", "migration", name, "direction", r.direction.String(), "source", src, "target", dst)
	start := time.Now()
	err = cmd.Run()
	out.flush()
	switch {
	case err == nil:
		r.log.Info("migration done", "migration", name, "took", time.Since(start).Round(time.Millisecond))
		return nil
	case errors.Is(sctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		return fmt.Errorf("migration %s timed out after %s and was killed", name, timeout)
	case ctx.Err() != nil:
		return fmt.Errorf("migration %s interrupted: %w", name, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		msg := fmt.Sprintf("migration %s %s failed: %s", name, r.direction, ee.ProcessState)
		if last := out.last(); last != "" {
			msg += ": " + last
		}
		return errors.New(msg)
	}
	return fmt.Errorf("migration %s: %w", name, err)
}

// copyDatastore copies the database file of src into dst and syncs it.
func copyDatastore(ctx context.Context, src, dst string) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	in, err := os.Open(filepath.Join(src, datastore.DBFile))
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(filepath.Join(dst, datastore.DBFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return durable.SyncDir(dst)
}

// lockBase takes the migrator's exclusive lock in base, failing at once if
// another migrator holds it.
func lockBase(base string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(base, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open migrator lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another migrator is running on %s", base)
		}
		return nil, fmt.Errorf("lock %s: %w", base, err)
	}
	return func() { f.Close() }, nil
}

var versionDirRe = regexp.MustCompile(`^v\d+\.\d+\.\d+_[A-Za-z0-9]+$`)

// removeLeftovers removes the directories an interrupted migrator left: a
// version directory that still holds IncompleteMarker and that no link in
// base resolves to.
func removeLeftovers(base string, log *slog.Logger) {
	entries, err := os.ReadDir(base)
	if err != nil {
		log.Warn("could not look for leftovers of interrupted migrations", "error", err)
		return
	}
	linked := map[string]bool{}
	for _, e := range entries {
		if e.Type()&os.ModeSymlink != 0 {
			if dir, err := filepath.EvalSymlinks(filepath.Join(base, e.Name())); err == nil {
				linked[filepath.Base(dir)] = true
			}
		}
	}
	for _, e := range entries {
		if !e.IsDir() || !versionDirRe.MatchString(e.Name()) || linked[e.Name()] {
			continue
		}
		dir := filepath.Join(base, e.Name())
		if _, err := os.Stat(filepath.Join(dir, IncompleteMarker)); err != nil {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("could not remove the leftover of an interrupted migration", "dir", dir, "error", err)
			continue
		}
		log.Info("removed the leftover of an interrupted migration", "dir", dir)
	}
}

// lineLog writes a migration's output to the log one line at a time and
// keeps the last line for error messages.
type lineLog struct {
	log     *slog.Logger
	name    string
	partial []byte
	lastOut string
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.emit(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) > 64<<10 { // a very long line: emit it in pieces
		l.emit(string(l.partial))
		l.partial = nil
	}
	return len(p), nil
}

func (l *lineLog) emit(line string) {
	line = strings.TrimRight(line, "\r")
	if strings.TrimSpace(line) == "" {
		return
	}
	l.lastOut = line
	l.log.Info("migration output", "migration", l.name, "line", line)
}

func (l *lineLog) flush() {
	if len(l.partial) > 0 {
		l.emit(string(l.partial))
		l.partial = nil
	}
}

func (l *lineLog) last() string { return l.lastOut }

// decompressTo writes the zstd-compressed file src, decompressed, to dst
// as an executable only its owner can touch.
func decompressTo(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	dec, err := zstd.NewReader(in, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return "", fmt.Errorf("%s is not zstd: %w", src, err)
	}
	defer dec.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o700)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, dec); err != nil {
		out.Close()
		return "", fmt.Errorf("decompress %s: %w", src, err)
	}
	return dst, out.Close()
}
