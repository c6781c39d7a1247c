package generator

import (
	"testing"

	"github.com/gantry-os/gantry/pkg/model"
)

func TestSeedRange(t *testing.T) {
	seen := map[uint32]bool{}
	for i := 0; i < 2000; i++ {
		s, err := Seed()
		if err != nil {
			t.Fatal(err)
		}
		if s > model.MaxUpdateSeed {
			t.Fatalf("seed %d out of range", s)
		}
		seen[s] = true
	}
	if len(seen) < 500 {
		t.Fatalf("only %d distinct seeds in 2000 draws", len(seen))
	}
}
