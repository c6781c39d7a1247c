// Package updateapi owns the update API's state machine (Bottlerocket's
// thar-be-updates): the states Idle, Available, Staged and Ready, which
// command each allows, the status document behind GET /updates/status, and
// the lock that makes one update command run at a time while status reads
// are refused (423) rather than served half-written.
package updateapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/pkg/version"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gantry-os/gantry/internal/update/manifest"
)

// States of an update.
const (
	Idle      = "Idle"
	Available = "Available"
	Staged    = "Staged"
	Ready     = "Ready"
)

// Commands, as recorded in most_recent_command.cmd_type.
const (
	CmdRefresh    = "refresh"
	CmdPrepare    = "prepare"
	CmdActivate   = "activate"
	CmdDeactivate = "deactivate"
)

// Errors of Start, mapped by the API to 423, 409, 404 and 404.
var (
	ErrLocked        = errors.New("an update command is already running")
	ErrDisallowed    = errors.New("command not allowed in the current update state")
	ErrNoUpdate      = errors.New("no update has been chosen; refresh-updates first")
	ErrNoStaged      = errors.New("no update is staged; prepare-update first")
	ErrUninitialized = errors.New("Update status is uninitialized, refresh-updates to initialize it")
)

// Image identifies an OS image.
type Image struct {
	Arch    string `json:"arch"`
	Version string `json:"version"`
	Variant string `json:"variant"`
}

// Partition is a partition set and what it holds.
type Partition struct {
	Image      Image `json:"image"`
	NextToBoot bool  `json:"next_to_boot"`
}

// Command records the last command's outcome.
type Command struct {
	CmdType    string    `json:"cmd_type"`
	CmdStatus  string    `json:"cmd_status"`
	Timestamp  time.Time `json:"timestamp"`
	ExitStatus *int      `json:"exit_status"`
	Stderr     *string   `json:"stderr"`
}

// Status is the document GET /updates/status returns.
type Status struct {
	UpdateState       string     `json:"update_state"`
	AvailableUpdates  []string   `json:"available_updates"`
	ChosenUpdate      *Image     `json:"chosen_update"`
	ActivePartition   *Partition `json:"active_partition"`
	StagingPartition  *Partition `json:"staging_partition"`
	MostRecentCommand *Command   `json:"most_recent_command"`
}

// Updater does the work of each command (updog).
type Updater interface {
	// Refresh returns every applicable update, newest first, and the one
	// the node should take (nil for none).
	Refresh(ctx context.Context) (available []manifest.Update, chosen *manifest.Update, err error)
	// Prepare writes the chosen update into the inactive partition set.
	Prepare(ctx context.Context, chosen Image) error
	// Activate makes the inactive set boot next; Deactivate undoes it.
	Activate(ctx context.Context) error
	Deactivate(ctx context.Context) error
}

// Manager runs update commands, one at a time, in the background.
type Manager struct {
	dir     string // holds status.json and the lock file
	updater Updater
	running Image
	log     *slog.Logger
	ctx     context.Context
	now     func() time.Time
	done    chan struct{} // closed when a background command finishes (tests)
}

// New returns a Manager keeping its files in dir (a tmpfs such as
// /run/cache/gantry-updates, so a reboot starts from Idle). ctx bounds the
// background work.
func New(ctx context.Context, dir string, u Updater, running Image, log *slog.Logger) (*Manager, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create update status directory: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{dir: dir, updater: u, running: running, log: log, ctx: ctx, now: time.Now}, nil
}

func (m *Manager) statusPath() string { return filepath.Join(m.dir, "status.json") }
func (m *Manager) lockPath() string   { return filepath.Join(m.dir, "updates.lock") }

// lock takes a non-blocking flock on the lock file.
func (m *Manager) lock(how int) (*os.File, error) {
	f, err := os.OpenFile(m.lockPath(), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open update lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("lock updates: %w", err)
	}
	return f, nil
}

// Status returns the current status, refusing while a command holds the
// lock (ErrLocked) and before the first command (ErrUninitialized).
func (m *Manager) Status() (*Status, error) {
	f, err := m.lock(syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return m.read()
}

func (m *Manager) read() (*Status, error) {
	b, err := os.ReadFile(m.statusPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrUninitialized
	}
	if err != nil {
		return nil, fmt.Errorf("read update status: %w", err)
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("update status is corrupt: %w", err)
	}
	return &s, nil
}

func (m *Manager) write(s *Status) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(m.dir, ".status-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), m.statusPath())
}

// Start checks that cmd is allowed now and runs it in the background,
// holding the lock until it is done; poll Status for the outcome.
func (m *Manager) Start(cmd string) error {
	lock, err := m.lock(syscall.LOCK_EX)
	if err != nil {
		return err
	}
	st, err := m.read()
	if errors.Is(err, ErrUninitialized) {
		st = &Status{UpdateState: Idle, AvailableUpdates: []string{}, ActivePartition: &Partition{Image: m.running, NextToBoot: true}}
		err = m.write(st)
	}
	if err == nil {
		err = allowed(st, cmd)
	}
	if err != nil {
		lock.Close()
		return err
	}
	m.done = make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		defer lock.Close()
		m.run(st, cmd)
	}(m.done)
	return nil
}

// Wait blocks until the last started command finished (for tests).
func (m *Manager) Wait() {
	if m.done != nil {
		<-m.done
	}
}

func allowed(st *Status, cmd string) error {
	switch cmd {
	case CmdRefresh:
		return nil
	case CmdPrepare:
		if st.UpdateState != Available && st.UpdateState != Staged {
			return fmt.Errorf("%w: prepare needs Available or Staged, not %s", ErrDisallowed, st.UpdateState)
		}
		if st.ChosenUpdate == nil {
			return ErrNoUpdate
		}
	case CmdActivate:
		if st.UpdateState != Staged {
			return fmt.Errorf("%w: activate needs Staged, not %s", ErrDisallowed, st.UpdateState)
		}
		if st.StagingPartition == nil {
			return ErrNoStaged
		}
	case CmdDeactivate:
		if st.UpdateState != Ready {
			return fmt.Errorf("%w: deactivate needs Ready, not %s", ErrDisallowed, st.UpdateState)
		}
		if st.StagingPartition == nil {
			return ErrNoStaged
		}
	default:
		return fmt.Errorf("%w: unknown command %q", ErrDisallowed, cmd)
	}
	return nil
}

// run carries a command out and records it; on failure the state stays.
func (m *Manager) run(st *Status, cmd string) {
	ctx := m.ctx
	var err error
	switch cmd {
	case CmdRefresh:
		var avail []manifest.Update
		var chosen *manifest.Update
		avail, chosen, err = m.updater.Refresh(ctx)
		if err == nil {
			st.AvailableUpdates = []string{}
			for _, u := range avail {
				st.AvailableUpdates = append(st.AvailableUpdates, u.Version.String())
			}
			st.ChosenUpdate = nil
			if chosen != nil {
				st.ChosenUpdate = &Image{Arch: chosen.Arch, Version: chosen.Version.String(), Variant: chosen.Variant}
			}
			if st.UpdateState == Idle || st.UpdateState == Available {
				st.UpdateState = Idle
				if st.ChosenUpdate != nil {
					st.UpdateState = Available
				}
			}
		} else if st.UpdateState == Available {
			st.UpdateState, st.ChosenUpdate = Idle, nil
		}
	case CmdPrepare:
		if err = m.updater.Prepare(ctx, *st.ChosenUpdate); err == nil {
			st.UpdateState = Staged
			st.StagingPartition = &Partition{Image: *st.ChosenUpdate}
			st.ActivePartition = &Partition{Image: m.running, NextToBoot: true}
		}
	case CmdActivate:
		if err = m.updater.Activate(ctx); err == nil {
			st.UpdateState = Ready
			st.StagingPartition.NextToBoot, st.ActivePartition.NextToBoot = true, false
		}
	case CmdDeactivate:
		if err = m.updater.Deactivate(ctx); err == nil {
			st.UpdateState = Staged
			st.StagingPartition.NextToBoot, st.ActivePartition.NextToBoot = false, true
		}
	}
	rec := &Command{CmdType: cmd, CmdStatus: "Success", Timestamp: m.now().UTC()}
	code := 0
	if err != nil {
		code = 1
		msg := err.Error()
		rec.CmdStatus, rec.Stderr = "Failed", &msg
		m.log.Error("update command failed", "command", cmd, "error", err)
	} else {
		m.log.Info("update command done", "command", cmd, "state", st.UpdateState)
	}
	rec.ExitStatus = &code
	st.MostRecentCommand = rec
	if err := m.write(st); err != nil {
		m.log.Error("write update status", "error", err)
	}
}

// RunningImage describes the running OS for the status document.
func RunningImage(variant, arch string, version version.Semver) Image {
	return Image{Arch: arch, Version: version.String(), Variant: variant}
}
