package generator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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

func TestDefaultRouteInterface(t *testing.T) {
	p := filepath.Join(t.TempDir(), "route")
	os.WriteFile(p, []byte("Iface\tDestination\tGateway\nens4\t0A000000\t00000000\neth1\t00000000\t0102000A\n"), 0o644)
	if got := defaultRouteInterface(p); got != "eth1" {
		t.Fatalf("defaultRouteInterface = %q", got)
	}
	if got := defaultRouteInterface(filepath.Join(t.TempDir(), "none")); got != "" {
		t.Fatalf("missing file gave %q", got)
	}
}

func TestHostname(t *testing.T) {
	n := System()
	ip, err := n.NodeIP()
	if errors.Is(err, ErrNothing) {
		t.Skip("this machine has no global IPv4 address")
	}
	tests := []struct {
		names []string
		err   error
		want  string
	}{
		{[]string{"Node-7.Example.COM."}, nil, "node-7.example.com"},
		{[]string{"bad_name!"}, nil, "ip-" + dashed(ip.String())},
		{nil, errors.New("no PTR"), "ip-" + dashed(ip.String())},
	}
	for _, tt := range tests {
		n.Lookup = func(context.Context, string) ([]string, error) { return tt.names, tt.err }
		got, err := n.Hostname(context.Background())
		if err != nil || got != tt.want {
			t.Errorf("Hostname with %v/%v = %q, %v; want %q", tt.names, tt.err, got, err, tt.want)
		}
	}
}

func dashed(s string) string {
	out := []byte(s)
	for i, c := range out {
		if c == '.' {
			out[i] = '-'
		}
	}
	return string(out)
}
