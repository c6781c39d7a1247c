package gptprio

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
)

func pr(priority, tries int, successful bool) Prio {
	return Prio{Priority: priority, TriesLeft: tries, Successful: successful}
}

// newImage writes a real GPT image file of the default plan with the given
// flags on BOOT-A and BOOT-B.
func newImage(t *testing.T, a, b Prio) string {
	t.Helper()
	l, err := disklayout.Plan(disklayout.Options{Rand: disklayout.SeededRand([]byte(t.Name()))})
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "os.img")
	if err := disklayout.WriteFile(img, l.OS); err != nil {
		t.Fatal(err)
	}
	setFlags(t, img, a, b)
	return img
}

func setFlags(t *testing.T, img string, a, b Prio) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := disklayout.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	for id, p := range map[disklayout.SetID]Prio{disklayout.SetA: a, disklayout.SetB: b} {
		s, err := tab.Partitions().Set(id)
		if err != nil {
			t.Fatal(err)
		}
		if err := tab.SetAttributes(s.Boot.Number, p.Apply(s.Boot.Attributes)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tab.WriteBack(f); err != nil {
		t.Fatal(err)
	}
}

// flagsOnDisk reads both sets' flags back from the image, checking that
// the primary and backup tables agree.
func flagsOnDisk(t *testing.T, img string) (a, b Prio) {
	t.Helper()
	if err := disklayout.Verify(img); err != nil {
		t.Fatalf("after the try: %v", err)
	}
	tab, err := disklayout.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := tab.Partitions().Set(disklayout.SetA)
	sb, _ := tab.Partitions().Set(disklayout.SetB)
	return Of(sa.Boot.Attributes), Of(sb.Boot.Attributes)
}

func TestBootTakesATry(t *testing.T) {
	tests := []struct {
		name         string
		a, b         Prio
		want         disklayout.SetID
		wantA, wantB Prio
		tookTry      bool
		wantErr      error
	}{
		{name: "new image boots A without a try", a: pr(1, 0, true), b: pr(0, 0, false),
			want: "A", wantA: pr(1, 0, true), wantB: pr(0, 0, false)},
		{name: "upgrade: B's one try is taken", a: pr(1, 0, true), b: pr(2, 1, false),
			want: "B", wantA: pr(1, 0, true), wantB: pr(2, 0, false), tookTry: true},
		{name: "after B failed its try: back to A", a: pr(1, 0, true), b: pr(2, 0, false),
			want: "A", wantA: pr(1, 0, true), wantB: pr(2, 0, false)},
		{name: "tie goes to A, its try taken", a: pr(2, 3, false), b: pr(2, 0, true),
			want: "A", wantA: pr(2, 2, false), wantB: pr(2, 0, true), tookTry: true},
		{name: "successful with tries: a try is still taken", a: pr(1, 0, true), b: pr(3, 2, true),
			want: "B", wantA: pr(1, 0, true), wantB: pr(3, 1, true), tookTry: true},
		{name: "priority 0 never boots", a: pr(0, 5, true), b: pr(1, 1, false),
			want: "B", wantA: pr(0, 5, true), wantB: pr(1, 0, false), tookTry: true},
		{name: "nothing bootable", a: pr(0, 0, true), b: pr(2, 0, false),
			wantA: pr(0, 0, true), wantB: pr(2, 0, false), wantErr: ErrNoBootableSet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := newImage(t, tt.a, tt.b)
			c, err := Boot(img)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "A: priority=") {
					t.Fatalf("Boot error %v, want %v with the flags", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if err == nil {
				if c.Set.ID != tt.want || c.TookTry() != tt.tookTry {
					t.Errorf("Boot chose %s (took try %v), want %s (%v)", c.Set.ID, c.TookTry(), tt.want, tt.tookTry)
				}
				wantBefore := map[disklayout.SetID]Prio{"A": tt.a, "B": tt.b}[tt.want]
				if c.Before != wantBefore || Of(c.Set.Boot.Attributes) != c.After {
					t.Errorf("choice %+v: before %+v, want %+v; after %+v, entry %+v", c, c.Before, wantBefore, c.After, Of(c.Set.Boot.Attributes))
				}
			}
			a, b := flagsOnDisk(t, img)
			if a != tt.wantA || b != tt.wantB {
				t.Errorf("on disk after: A %s, B %s; want A %s, B %s", a, b, tt.wantA, tt.wantB)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	ctx := context.Background()
	// B is new (one try) but cannot be loaded: the loop falls back to A,
	// having used B's try, exactly as a reboot after a failed load would.
	img := newImage(t, pr(1, 0, true), pr(2, 1, false))
	var tried []disklayout.SetID
	c, failed, err := Select(ctx, img, 4, func(c Choice) error {
		tried = append(tried, c.Set.ID)
		if c.Set.ID == disklayout.SetB {
			return errors.New("no vmlinuz")
		}
		return nil
	})
	if err != nil || c.Set.ID != disklayout.SetA || len(failed) != 1 || strings.Join([]string{string(tried[0]), string(tried[1])}, "") != "BA" {
		t.Fatalf("Select = %s, failed %v, %v; tried %v", c.Set.ID, failed, err, tried)
	}
	if !strings.Contains(failed[0].Error(), "set B: no vmlinuz") {
		t.Errorf("failure %q does not name the set", failed[0])
	}
	if _, b := flagsOnDisk(t, img); b != pr(2, 0, false) {
		t.Errorf("B after its failed load: %s", b)
	}

	// Nothing loads: A is successful, so every attempt picks it again.
	img = newImage(t, pr(1, 0, true), pr(0, 0, false))
	n := 0
	_, failed, err = Select(ctx, img, 3, func(Choice) error { n++; return errors.New("broken") })
	if err == nil || n != 3 || len(failed) != 3 || !strings.Contains(err.Error(), "no set could be loaded in 3 attempts") {
		t.Errorf("Select with nothing loadable: %v after %d loads, failed %v", err, n, failed)
	}

	// A cancelled caller takes no further tries.
	img = newImage(t, pr(2, 3, false), pr(1, 0, true))
	cctx, cancel := context.WithCancel(ctx)
	_, _, err = Select(cctx, img, 4, func(Choice) error { cancel(); return cctx.Err() })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Select: %v", err)
	}
	if a, _ := flagsOnDisk(t, img); a != pr(2, 2, false) {
		t.Errorf("A after a cancelled Select: %s, want one try taken", a)
	}
}

func TestPrioBits(t *testing.T) {
	for _, tt := range []struct {
		attrs    uint64
		want     Prio
		eligible bool
	}{
		{0, Prio{}, false},
		{1<<48 | 1<<56, pr(1, 0, true), true},
		{2<<48 | 1<<52, pr(2, 1, false), true},
		{2 << 48, pr(2, 0, false), false},
		{1<<52 | 1<<56, pr(0, 1, true), false},
	} {
		p := Of(tt.attrs)
		if p != tt.want || p.Eligible() != tt.eligible || p.Apply(tt.attrs) != tt.attrs {
			t.Errorf("Of(%#x) = %+v eligible %v", tt.attrs, p, p.Eligible())
		}
		if other := uint64(0xfe00ffffffffffff); p.Apply(other)&^Mask != other&^Mask {
			t.Errorf("Apply changed bits outside the mask")
		}
	}
}
