package signpost

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
)

const (
	A = disklayout.SetA
	B = disklayout.SetB
)

// newImage writes a fresh OS disk image (sparse) and returns its path.
func newImage(t *testing.T, opts disklayout.Options) string {
	t.Helper()
	l, err := disklayout.Plan(opts)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "os.img")
	if err := disklayout.WriteFile(img, l.OS); err != nil {
		t.Fatal(err)
	}
	return img
}

// flags renders both sets' flags compactly: "A{p1 t0 s1} B{p0 t0 s0}".
func flags(s *State) string {
	var parts []string
	for _, set := range s.Sets() {
		p := s.Prio(set.ID)
		succ := 0
		if p.Successful {
			succ = 1
		}
		parts = append(parts, fmt.Sprintf("%s{p%d t%d s%d}", set.ID, p.Priority, p.TriesLeft, succ))
	}
	return strings.Join(parts, " ")
}

// step is one thing that happens to a disk: a signpost operation run on the
// booted system, or a reboot through (emulated) GRUB.
type step struct {
	do      string
	wantErr error
	// After the step, reloaded from disk:
	flags  string
	active disklayout.SetID
	next   disklayout.SetID // "" = none
	ever   bool
}

// run applies steps to img, starting with set active running, reloading the
// state from disk after each step as a new process would, and checking that
// every step changed nothing but signpost's attribute bits.
func run(t *testing.T, img string, active disklayout.SetID, steps []step) {
	t.Helper()
	for i, st := range steps {
		before := rawEntries(t, img)
		s, err := Load(img, active)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		var opErr error
		switch st.do {
		case "boot":
			active, opErr = SimulateBoot(s)
		case "write-images":
			writeInactiveImages(t, s)
		default:
			opErr = operation(st.do)(s)
		}
		if !errors.Is(opErr, st.wantErr) || (st.wantErr == nil) != (opErr == nil) {
			t.Fatalf("step %d %s: error %v, want %v", i, st.do, opErr, st.wantErr)
		}
		if opErr == nil {
			if err := s.Save(); err != nil {
				t.Fatalf("step %d %s: save: %v", i, st.do, err)
			}
		}
		checkOnlyPrioBitsChanged(t, img, before, rawEntries(t, img))
		if err := disklayout.Verify(img); err != nil {
			t.Fatalf("step %d %s: %v", i, st.do, err)
		}

		s, err = Load(img, active)
		if err != nil {
			t.Fatal(err)
		}
		next, _ := s.Next()
		if got := flags(s); got != st.flags || active != st.active || next != st.next || s.HasBootEverSucceeded() != st.ever {
			t.Fatalf("step %d %s: %s active=%s next=%q ever=%v; want %s active=%s next=%q ever=%v",
				i, st.do, got, active, next, s.HasBootEverSucceeded(), st.flags, st.active, st.next, st.ever)
		}
	}
}

func operation(name string) func(*State) error {
	return map[string]func(*State) error{
		"mark-successful-boot": (*State).MarkSuccessfulBoot,
		"clear-inactive":       (*State).ClearInactive,
		"mark-inactive-valid":  (*State).MarkInactiveValid,
		"upgrade-to-inactive":  (*State).UpgradeToInactive,
		"cancel-upgrade":       (*State).CancelUpgrade,
		"rollback-to-inactive": (*State).RollbackToInactive,
		"rewrite-table":        func(*State) error { return nil },
	}[name]
}

// writeInactiveImages writes stand-in images into the inactive set's
// partitions, as updog does, and checks that the active set's are untouched.
func writeInactiveImages(t *testing.T, s *State) {
	t.Helper()
	in, err := s.InactiveSet()
	if err != nil {
		t.Fatal(err)
	}
	act, _ := s.ActiveSet()
	readActive := func() string {
		sec, err := disklayout.OpenPartition(s.Disk(), act.Root.Number, os.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		defer sec.Close()
		b := make([]byte, 64)
		if _, err := sec.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	activeBefore := readActive()
	for _, p := range []disklayout.Partition{in.Root, in.Boot, in.Hash} {
		sec, err := disklayout.OpenPartition(s.Disk(), p.Number, os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sec.WriteAt([]byte("image of "+p.Name), 0); err != nil {
			t.Fatal(err)
		}
		if err := sec.Sync(); err != nil {
			t.Fatal(err)
		}
		sec.Close()
	}
	if got := readActive(); got != activeBefore {
		t.Errorf("active ROOT changed: %q", got)
	}
}

// rawEntries returns the primary partition entry array's bytes.
func rawEntries(t *testing.T, img string) []byte {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 128*128)
	if _, err := f.ReadAt(b, 2*512); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkOnlyPrioBitsChanged fails unless the only differences between two
// entry arrays are bits 48–56 of BOOT entries and bit 57 of the PRIVATE
// entry. (Verify separately checks primary == backup.)
func checkOnlyPrioBitsChanged(t *testing.T, img string, before, after []byte) {
	t.Helper()
	tab, err := disklayout.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[int]uint64{}
	for _, p := range tab.Partitions() {
		switch p.Kind {
		case disklayout.KindBoot:
			allowed[p.Number] = prioMask
		case disklayout.KindPrivate:
			allowed[p.Number] = 1 << BootSucceededBit
		}
	}
	for n := 1; n <= 128; n++ {
		b, a := before[(n-1)*128:n*128], after[(n-1)*128:n*128]
		if string(b[:48]) != string(a[:48]) || string(b[56:]) != string(a[56:]) {
			t.Errorf("entry %d changed outside its attributes", n)
		}
		diff := binary.LittleEndian.Uint64(b[48:56]) ^ binary.LittleEndian.Uint64(a[48:56])
		if diff&^allowed[n] != 0 {
			t.Errorf("entry %d: attribute bits %#x changed; only %#x may", n, diff, allowed[n])
		}
	}
}

func TestLifecycle(t *testing.T) {
	// The update up to the point of reboot, from a fresh image running A.
	staged := []step{
		{do: "clear-inactive", flags: "A{p1 t0 s1} B{p0 t0 s0}", active: A, next: A},
		{do: "write-images", flags: "A{p1 t0 s1} B{p0 t0 s0}", active: A, next: A},
		{do: "mark-inactive-valid", flags: "A{p1 t0 s1} B{p0 t1 s0}", active: A, next: A},
		{do: "upgrade-to-inactive", flags: "A{p1 t0 s1} B{p2 t1 s0}", active: A, next: B},
	}
	// The reboot into the new set, which takes its one try.
	tried := append(append([]step(nil), staged...),
		step{do: "boot", flags: "A{p1 t0 s1} B{p2 t0 s0}", active: B, next: A})
	// A boot of A that marks success, before any update.
	firstBoot := []step{
		{do: "boot", flags: "A{p1 t0 s1} B{p0 t0 s0}", active: A, next: A},
		{do: "mark-successful-boot", flags: "A{p1 t0 s1} B{p0 t0 s0}", active: A, next: A, ever: true},
	}
	updated := append(append([]step(nil), tried...),
		step{do: "mark-successful-boot", flags: "A{p1 t0 s1} B{p2 t0 s1}", active: B, next: B, ever: true})

	tests := []struct {
		name  string
		steps []step
	}{
		{"first boot marks success", firstBoot},
		{"update succeeds", append(updated,
			step{do: "boot", flags: "A{p1 t0 s1} B{p2 t0 s1}", active: B, next: B, ever: true},
			step{do: "rewrite-table", flags: "A{p1 t0 s1} B{p2 t0 s1}", active: B, next: B, ever: true},
		)},
		{"new set never marked: automatic rollback to A", append(tried,
			step{do: "boot", flags: "A{p1 t0 s1} B{p2 t0 s0}", active: A, next: A},
			step{do: "mark-successful-boot", flags: "A{p1 t0 s1} B{p2 t0 s0}", active: A, next: A, ever: true},
			// The failed set cannot be upgraded again without clearing.
			step{do: "upgrade-to-inactive", wantErr: ErrAlreadyMarked, flags: "A{p1 t0 s1} B{p2 t0 s0}", active: A, next: A, ever: true},
			step{do: "rollback-to-inactive", wantErr: ErrWouldNotBoot, flags: "A{p1 t0 s1} B{p2 t0 s0}", active: A, next: A, ever: true},
			step{do: "clear-inactive", flags: "A{p1 t0 s1} B{p0 t0 s0}", active: A, next: A, ever: true},
		)},
		{"cancel before the reboot, then upgrade again", append(staged,
			step{do: "cancel-upgrade", flags: "A{p2 t0 s1} B{p0 t1 s0}", active: A, next: A},
			step{do: "boot", flags: "A{p2 t0 s1} B{p0 t1 s0}", active: A, next: A},
			step{do: "upgrade-to-inactive", flags: "A{p1 t0 s1} B{p2 t1 s0}", active: A, next: B},
			step{do: "boot", flags: "A{p1 t0 s1} B{p2 t0 s0}", active: B, next: A},
		)},
		{"manual rollback after a successful update", append(updated,
			step{do: "rollback-to-inactive", flags: "A{p2 t0 s1} B{p1 t0 s1}", active: B, next: A, ever: true},
			step{do: "boot", flags: "A{p2 t0 s1} B{p1 t0 s1}", active: A, next: A, ever: true},
			// and forward again: B is still known good.
			step{do: "rollback-to-inactive", flags: "A{p1 t0 s1} B{p2 t0 s1}", active: A, next: B, ever: true},
		)},
		{"second update from B into A", append(updated,
			step{do: "upgrade-to-inactive", wantErr: ErrAlreadyMarked, flags: "A{p1 t0 s1} B{p2 t0 s1}", active: B, next: B, ever: true},
			step{do: "clear-inactive", flags: "A{p0 t0 s0} B{p2 t0 s1}", active: B, next: B, ever: true},
			step{do: "write-images", flags: "A{p0 t0 s0} B{p2 t0 s1}", active: B, next: B, ever: true},
			step{do: "mark-inactive-valid", flags: "A{p0 t1 s0} B{p2 t0 s1}", active: B, next: B, ever: true},
			step{do: "upgrade-to-inactive", flags: "A{p2 t1 s0} B{p1 t0 s1}", active: B, next: A, ever: true},
			step{do: "boot", flags: "A{p2 t0 s0} B{p1 t0 s1}", active: A, next: B, ever: true},
			step{do: "mark-successful-boot", flags: "A{p2 t0 s1} B{p1 t0 s1}", active: A, next: A, ever: true},
		)},
		{"errors on a fresh image", []step{
			{do: "upgrade-to-inactive", wantErr: ErrNotMarkedValid, flags: "A{p1 t0 s1} B{p0 t0 s0}", active: A, next: A},
			{do: "rollback-to-inactive", wantErr: ErrWouldNotBoot, flags: "A{p1 t0 s1} B{p0 t0 s0}", active: A, next: A},
			{do: "mark-inactive-valid", flags: "A{p1 t0 s1} B{p0 t1 s0}", active: A, next: A},
			// Valid but not upgraded: still not a rollback target.
			{do: "rollback-to-inactive", wantErr: ErrWouldNotBoot, flags: "A{p1 t0 s1} B{p0 t1 s0}", active: A, next: A},
			{do: "upgrade-to-inactive", flags: "A{p1 t0 s1} B{p2 t1 s0}", active: A, next: B},
			{do: "upgrade-to-inactive", wantErr: ErrAlreadyMarked, flags: "A{p1 t0 s1} B{p2 t1 s0}", active: A, next: B},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run(t, newImage(t, disklayout.Options{}), A, tt.steps)
		})
	}
}

func TestNoBootableSet(t *testing.T) {
	img := newImage(t, disklayout.Options{})
	s, err := Load(img, A)
	if err != nil {
		t.Fatal(err)
	}
	// A set with priority 0 is never booted, even if marked successful.
	s.setPrio(A, Prio{Priority: 0, Successful: true})
	s.setPrio(B, Prio{Priority: 3, TriesLeft: 0})
	if id, ok := s.Next(); ok {
		t.Errorf("Next() = %s", id)
	}
	if _, err := SimulateBoot(s); !errors.Is(err, ErrNoBootableSet) {
		t.Errorf("SimulateBoot = %v", err)
	}
	// Ties go to A; higher priority wins; tries > 0 are taken.
	tests := []struct {
		a, b      Prio
		want      disklayout.SetID
		wantTries int
	}{
		{prioOf(2, 0, true), prioOf(2, 0, true), A, 0},
		{prioOf(1, 0, true), prioOf(2, 3, false), B, 2},
		{prioOf(15, 15, false), prioOf(2, 0, true), A, 14},
		{prioOf(0, 1, false), prioOf(1, 0, true), B, 0},
	}
	for _, tt := range tests {
		s.setPrio(A, tt.a)
		s.setPrio(B, tt.b)
		got, err := SimulateBoot(s)
		if err != nil || got != tt.want || s.Prio(got).TriesLeft != tt.wantTries {
			t.Errorf("A %s, B %s: booted %s (tries now %d), %v; want %s with %d", tt.a, tt.b, got, s.Prio(got).TriesLeft, err, tt.want, tt.wantTries)
		}
	}
}

func TestSingleSetDisk(t *testing.T) {
	img := newImage(t, disklayout.Options{SingleBank: true})
	if _, err := Load(img, B); !errors.Is(err, ErrSingleSet) {
		t.Errorf("Load(B) = %v", err)
	}
	s, err := Load(img, A)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"clear-inactive", "mark-inactive-valid", "upgrade-to-inactive", "cancel-upgrade", "rollback-to-inactive"} {
		if err := operation(name)(s); !errors.Is(err, ErrSingleSet) {
			t.Errorf("%s = %v, want ErrSingleSet", name, err)
		}
	}
	if next, ok := s.Next(); !ok || next != A {
		t.Errorf("Next() = %s, %v", next, ok)
	}
	if err := s.MarkSuccessfulBoot(); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
}

func TestActiveUnknown(t *testing.T) {
	img := newImage(t, disklayout.Options{})
	s, err := Load(img, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mark-successful-boot", "clear-inactive", "mark-inactive-valid", "upgrade-to-inactive", "cancel-upgrade", "rollback-to-inactive"} {
		if err := operation(name)(s); !errors.Is(err, ErrActiveUnknown) {
			t.Errorf("%s = %v, want ErrActiveUnknown", name, err)
		}
	}
	if next, ok := s.Next(); !ok || next != A || s.HasBootEverSucceeded() {
		t.Errorf("Next() = %s, %v", next, ok)
	}
	if _, err := Load(img, "C"); err == nil {
		t.Errorf("Load with active C succeeded")
	}
}

func TestSaveRefusesConcurrentChange(t *testing.T) {
	img := newImage(t, disklayout.Options{})
	s1, err := Load(img, A)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Load(img, A)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.ClearInactive(); err != nil {
		t.Fatal(err)
	}
	if err := s2.MarkInactiveValid(); err != nil {
		t.Fatal(err)
	}
	if err := s2.Save(); err != nil {
		t.Fatal(err)
	}
	if err := s1.MarkSuccessfulBoot(); err != nil {
		t.Fatal(err)
	}
	if err := s1.Save(); !errors.Is(err, ErrTableChanged) {
		t.Fatalf("Save over a concurrent change = %v", err)
	}
	// s2 can keep going: its own writes are what it loaded.
	if err := s2.UpgradeToInactive(); err != nil {
		t.Fatal(err)
	}
	if err := s2.Save(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRepairsDamagedPrimary(t *testing.T) {
	img := newImage(t, disklayout.Options{})
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("garbage"), 2*512+2*128+48); err != nil { // BOOT-A's attributes
		t.Fatal(err)
	}
	f.Close()
	s, err := Load(img, A)
	if err != nil {
		t.Fatal(err)
	}
	if got := flags(s); got != "A{p1 t0 s1} B{p0 t0 s0}" {
		t.Errorf("flags from the backup: %s", got)
	}
	if w := s.Warnings(); len(w) == 0 || !strings.Contains(w[0], "read from the backup") {
		t.Errorf("warnings %q", w)
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	if err := disklayout.Verify(img); err != nil {
		t.Errorf("after Save: %v", err)
	}
	if len(s.Warnings()) != 0 {
		t.Errorf("warnings after Save: %q", s.Warnings())
	}
}

func TestPrioBits(t *testing.T) {
	tests := []struct {
		attrs uint64
		want  Prio
		boot  bool
	}{
		{0, Prio{}, false},
		{1<<48 | 1<<56, prioOf(1, 0, true), true},
		{0x5555555555555555, prioOf(5, 5, true), true},
		{2<<48 | 1<<52, prioOf(2, 1, false), true},
		{2 << 48, prioOf(2, 0, false), false},
		{1 << 52, prioOf(0, 1, false), false},
	}
	for _, tt := range tests {
		p := PrioOf(tt.attrs)
		if p != tt.want || p.WillBoot() != tt.boot {
			t.Errorf("PrioOf(%#x) = %+v will_boot=%v, want %+v %v", tt.attrs, p, p.WillBoot(), tt.want, tt.boot)
		}
		if got := p.Apply(tt.attrs); got != tt.attrs {
			t.Errorf("Apply round trip of %#x = %#x", tt.attrs, got)
		}
	}
	// Bottlerocket's signpost test values: clearing keeps every other bit.
	attrs := uint64(0x5555555555555555)
	p := PrioOf(attrs)
	p.Priority = 0
	if attrs = p.Apply(attrs); attrs != 0x5550555555555555 {
		t.Errorf("priority 0: %#x", attrs)
	}
	p.TriesLeft = 0
	if attrs = p.Apply(attrs); attrs != 0x5500555555555555 {
		t.Errorf("tries 0: %#x", attrs)
	}
	p.Successful = false
	if attrs = p.Apply(attrs); attrs != 0x5400555555555555 {
		t.Errorf("not successful: %#x", attrs)
	}
	if got := (Prio{Priority: 20, TriesLeft: -1}).Apply(0); got != 15<<48 {
		t.Errorf("clamping: %#x", got)
	}
}

// prioOf is a Prio literal (Prio is gptprio's, so vet wants keyed fields).
func prioOf(priority, tries int, successful bool) Prio {
	return Prio{Priority: priority, TriesLeft: tries, Successful: successful}
}
