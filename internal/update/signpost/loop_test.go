package signpost

import (
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/testsupport"
)

// TestLoopDevice runs the lifecycle on a real block device (a loop device over
// a sparse file). It needs root and losetup, so it runs only when
// GANTRY_LOOP_TESTS=1, and always under CI, where no root or no loop
// device fails it.
func TestLoopDevice(t *testing.T) {
	testsupport.LoopTests(t)
	l, err := disklayout.Plan(disklayout.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dev := testsupport.LoopDevice(t, l.OS.Size)

	if err := disklayout.WriteFile(dev, l.OS); err != nil {
		t.Fatal(err)
	}
	if err := disklayout.Verify(dev); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("--disk", dev, "--active", "A", "status")
	if code != 0 || !strings.Contains(stdout, "boot="+dev+"p3 root="+dev+"p4 hash="+dev+"p5") {
		t.Fatalf("status on %s: exit %d\n%s%s", dev, code, stdout, stderr)
	}
	run(t, dev, A, []step{
		{do: "clear-inactive", flags: "A{p1 t0 s1} B{p0 t0 s0}", active: A, next: A},
		{do: "mark-inactive-valid", flags: "A{p1 t0 s1} B{p0 t1 s0}", active: A, next: A},
		{do: "upgrade-to-inactive", flags: "A{p1 t0 s1} B{p2 t1 s0}", active: A, next: B},
		{do: "boot", flags: "A{p1 t0 s1} B{p2 t0 s0}", active: B, next: A},
		{do: "mark-successful-boot", flags: "A{p1 t0 s1} B{p2 t0 s1}", active: B, next: B, ever: true},
	})
}
