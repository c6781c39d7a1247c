package updateapi

import (
	"context"
	"errors"
	"github.com/gantry-os/gantry/pkg/version"
	"testing"

	"github.com/gantry-os/gantry/internal/update/manifest"
)

// scripted is an Updater whose outcomes the test sets; the real one is
// updog's, exercised end to end in package updog.
type scripted struct {
	avail  []manifest.Update
	chosen *manifest.Update
	err    error
	block  chan struct{}
}

func (s *scripted) Refresh(ctx context.Context) ([]manifest.Update, *manifest.Update, error) {
	return s.avail, s.chosen, s.err
}
func (s *scripted) Prepare(ctx context.Context, _ Image) error {
	if s.block != nil {
		<-s.block
	}
	return s.err
}
func (s *scripted) Activate(ctx context.Context) error   { return s.err }
func (s *scripted) Deactivate(ctx context.Context) error { return s.err }

func TestStateMachine(t *testing.T) {
	v, _ := version.Parse("1.1.0")
	up := manifest.Update{Variant: "metal-dev", Arch: "x86_64", Version: v, MaxVersion: v}
	u := &scripted{avail: []manifest.Update{up}, chosen: &up}
	m, err := New(context.Background(), t.TempDir(), u, Image{"x86_64", "1.0.0", "metal-dev"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Status(); !errors.Is(err, ErrUninitialized) {
		t.Fatalf("status before any command: %v", err)
	}
	step := func(cmd string, wantErr error, wantState string) {
		t.Helper()
		err := m.Start(cmd)
		if !errors.Is(err, wantErr) {
			t.Fatalf("%s: %v, want %v", cmd, err, wantErr)
		}
		if err == nil {
			m.Wait()
		}
		st, err := m.Status()
		if err != nil {
			t.Fatal(err)
		}
		if st.UpdateState != wantState {
			t.Fatalf("after %s: state %s, want %s", cmd, st.UpdateState, wantState)
		}
	}
	step(CmdActivate, ErrDisallowed, Idle)
	step(CmdRefresh, nil, Available)
	step(CmdActivate, ErrDisallowed, Available)
	step(CmdPrepare, nil, Staged)
	step(CmdActivate, nil, Ready)
	st, _ := m.Status()
	if !st.StagingPartition.NextToBoot || st.ActivePartition.NextToBoot || st.ChosenUpdate.Version != "1.1.0" ||
		st.MostRecentCommand.CmdType != CmdActivate || st.MostRecentCommand.CmdStatus != "Success" {
		t.Fatalf("status after activate: %+v", st)
	}
	step(CmdRefresh, nil, Ready) // refresh does not move a staged update
	step(CmdDeactivate, nil, Staged)
	step(CmdPrepare, nil, Staged)
	// A failing command keeps the state and records why.
	u.err = errors.New("disk on fire")
	step(CmdActivate, nil, Staged)
	st, _ = m.Status()
	if st.MostRecentCommand.CmdStatus != "Failed" || *st.MostRecentCommand.Stderr != "disk on fire" || *st.MostRecentCommand.ExitStatus != 1 {
		t.Fatalf("failed command record: %+v", st.MostRecentCommand)
	}
	// A running command locks out others and status reads.
	u.err, u.block = nil, make(chan struct{})
	if err := m.Start(CmdPrepare); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(CmdRefresh); !errors.Is(err, ErrLocked) {
		t.Fatalf("second command while one runs: %v", err)
	}
	if _, err := m.Status(); !errors.Is(err, ErrLocked) {
		t.Fatalf("status while a command runs: %v", err)
	}
	close(u.block)
	m.Wait()
	if _, err := m.Status(); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshWithNothingChosen(t *testing.T) {
	m, _ := New(context.Background(), t.TempDir(), &scripted{}, Image{"x86_64", "1.0.0", "metal-dev"}, nil)
	if err := m.Start(CmdRefresh); err != nil {
		t.Fatal(err)
	}
	m.Wait()
	st, _ := m.Status()
	if st.UpdateState != Idle || st.ChosenUpdate != nil || len(st.AvailableUpdates) != 0 {
		t.Fatalf("status: %+v", st)
	}
	if err := m.Start(CmdPrepare); !errors.Is(err, ErrDisallowed) {
		t.Fatalf("prepare from Idle: %v", err)
	}
}
