package updog_test

import (
	"bytes"
	"crypto/sha256"
	"github.com/gantry-os/gantry/internal/testsupport"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/update/signpost"
)

// TestInterruptedWrite kills the real updog binary with SIGKILL at random
// points of `update-image` and checks, after each kill, that the active set
// is untouched and that the inactive set either cannot boot or holds the
// complete, verified update.
func TestInterruptedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	f := newFixture(t, 24)
	bin := testsupport.Build(t, filepath.Join(t.TempDir(), "updog"), "cmd/updog")
	rel := filepath.Join(f.dir, "os-release")
	os.WriteFile(rel, []byte("VARIANT_ID=metal-dev\nVERSION_ID=1.0.0\n"), 0o644)
	cache := t.TempDir()
	args := []string{"update-image", "--no-api", "--metadata-base-url", f.srv.URL + "/metadata/", "--targets-base-url", f.srv.URL + "/targets/",
		"--version-lock", "latest", "--root-json", filepath.Join(f.dir, "root.json"), "--metadata-directory", filepath.Join(cache, "md"),
		"--migration-directory", filepath.Join(cache, "mig"), "--os-release", rel, "--disk", f.disk, "--active", "A"}
	activeBefore := sha256.Sum256(f.partition(disklayout.SetA, "root", 24<<20))
	prioA := f.state().Prio(disklayout.SetA)

	// How long a whole run takes bounds where the kills land.
	start := time.Now()
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("a whole run failed: %v\n%s", err, out)
	}
	full := time.Since(start)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	killedMidWrite := 0
	for trial := 0; trial < 50; trial++ {
		// Start each trial from an inactive set that cannot boot.
		st := f.state()
		if err := st.ClearInactive(); err != nil {
			t.Fatal(err)
		}
		if err := st.Save(); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(full) * 3 / 2)))
		cmd.Process.Kill()
		err := cmd.Wait()

		if sha256.Sum256(f.partition(disklayout.SetA, "root", 24<<20)) != activeBefore {
			t.Fatalf("trial %d: the active set's root changed", trial)
		}
		st = f.state()
		if st.Prio(disklayout.SetA) != prioA {
			t.Fatalf("trial %d: the active set's flags changed: %+v", trial, st.Prio(disklayout.SetA))
		}
		b := st.Prio(disklayout.SetB)
		if b.Priority != 0 {
			t.Fatalf("trial %d: update-image made B the next boot: %+v", trial, b)
		}
		if next, _ := signpost.SimulateBoot(f.state()); next != disklayout.SetA {
			t.Fatalf("trial %d: next boot is %s", trial, next)
		}
		if b.TriesLeft > 0 {
			// Marked valid: then it must hold the whole update.
			for kind, img := range f.images {
				if !bytes.Equal(f.partition(disklayout.SetB, kind, len(img)), img) {
					t.Fatalf("trial %d: B is marked valid but its %s partition is incomplete (exit %v)", trial, kind, err)
				}
			}
		} else {
			killedMidWrite++
		}
	}
	t.Logf("50 kills over a %s run; %d left B invalid, the rest landed after it was complete", full.Round(time.Millisecond), killedMidWrite)
	if killedMidWrite == 0 {
		t.Fatal("no kill landed before the end: the test tested nothing")
	}
}
