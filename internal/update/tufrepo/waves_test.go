package tufrepo

import (
	"fmt"
	"github.com/gantry-os/gantry/pkg/version"
	"path/filepath"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/update/manifest"
)

func TestParseOffset(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"90m", 90 * time.Minute, false},
		{"1h30m", 90 * time.Minute, false},
		{"1 hour", time.Hour, false},
		{"4 hours", 4 * time.Hour, false},
		{"2 days", 48 * time.Hour, false},
		{"in 2 weeks", 14 * day, false},
		{"7d", 7 * day, false},
		{"1d 12h", 36 * time.Hour, false},
		{"52w", 52 * 7 * day, false},
		{"30 minutes", 30 * time.Minute, false},
		{"", 0, true},
		{"soon", 0, true},
		{"3 fortnights", 0, true},
		{"1 hour ago", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseOffset(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseOffset(%q) = %s, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseOffset(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestWaves(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []manifest.Wave
		err       string
	}{
		{"bottlerocket default file", `
[[waves]]
start_after = '1 hour'
fleet_percentage = 1
[[waves]]
start_after = '4 hours'
fleet_percentage = 5
[[waves]]
start_after = '1 day'
fleet_percentage = 15
[[waves]]
start_after = '2 days'
fleet_percentage = 40
[[waves]]
start_after = '4 days'
fleet_percentage = 60
[[waves]]
start_after = '5 days'
fleet_percentage = 90
[[waves]]
start_after = '6 days'
fleet_percentage = 100
`, manifest.DefaultWaves(), ""},
		{"not ending at 100", "[[waves]]\nstart_after = '1h'\nfleet_percentage = 50\n", nil, "not 100%"},
		{"shrinking", "[[waves]]\nstart_after = '1h'\nfleet_percentage = 50\n[[waves]]\nstart_after = '2h'\nfleet_percentage = 40\n", nil, "does not grow"},
		{"earlier offset", "[[waves]]\nstart_after = '2h'\nfleet_percentage = 50\n[[waves]]\nstart_after = '1h'\nfleet_percentage = 100\n", nil, "is not after"},
		{"bad percentage", "[[waves]]\nstart_after = '1h'\nfleet_percentage = 0\n", nil, "not 1-100"},
		{"unknown key", "[[waves]]\nstart_after = '1h'\nfleet_percentage = 100\nspeed = 3\n", nil, "unknown key"},
		{"empty", "", nil, "no [[waves]]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseWaves([]byte(tt.doc))
			if tt.err != "" {
				wantErr(t, err, tt.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	// Named policies, and a file by path.
	for name := range WavePolicies() {
		if _, err := LoadWaves(name); err != nil {
			t.Errorf("policy %s: %v", name, err)
		}
	}
	p := writeFile(t, t.TempDir(), "w.toml", []byte("[[waves]]\nstart_after = 'in 1 hour'\nfleet_percentage = 100\n"))
	if w, err := LoadWaves(p); err != nil || len(w) != 1 {
		t.Errorf("LoadWaves(%s) = %v, %v", p, w, err)
	}
	_, err := LoadWaves(filepath.Join(t.TempDir(), "fast"))
	wantErr(t, err, "not default, accelerated")
	// The default policy gives Bottlerocket's seeds.
	w, err := manifest.SetWaves(WavePolicies()["default"], t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, seed := range []uint32{0, 20, 102, 307, 819, 1228, 1843} {
		if _, ok := w[seed]; !ok {
			t.Errorf("default waves lack seed %d: %v", seed, w)
		}
	}
}

func TestMigrationInputs(t *testing.T) {
	v := func(s string) version.Semver { x, _ := version.Parse(s); return x }
	toml := []byte(`
[release]
version = "1.2.0"
[migrations]
"(1.0.0, 1.1.0)" = ["migrate_v1.1.0_a.zst", "migrate_v1.1.0_b.zst"]
"(1.1.0,  1.2.0)" = []
`)
	m, err := ParseMigrationsTOML(toml)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || len(m[manifest.Transition{From: v("1.0.0"), To: v("1.1.0")}]) != 2 || m[manifest.Transition{From: v("1.1.0"), To: v("1.2.0")}] == nil {
		t.Errorf("migrations %v", m)
	}
	_, err = ParseMigrationsTOML([]byte("[migrations]\n\"(1.1.0, 1.0.0)\" = []\n"))
	wantErr(t, err, "does not go to a higher version")

	tests := []struct {
		in    string
		want  string
		names int
		err   string
	}{
		{"(1.0.0, 1.1.0)=a.zst,b.zst", "(1.0.0, 1.1.0)", 2, ""},
		{"(1.1.0, 1.2.0)=", "(1.1.0, 1.2.0)", 0, ""},
		{"(v1.1.0,1.2.0)= a.zst ", "(1.1.0, 1.2.0)", 1, ""},
		{"1.0.0-1.1.0", "", 0, "is not"},
		{"(1.0, 1.1)=a", "", 0, "is not (FROM, TO)"},
	}
	for _, tt := range tests {
		tr, names, err := ParseTransitionFlag(tt.in)
		if tt.err != "" {
			wantErr(t, err, tt.err)
			continue
		}
		if err != nil || tr.String() != tt.want || len(names) != tt.names || names == nil {
			t.Errorf("ParseTransitionFlag(%q) = %s %q %v", tt.in, tr, names, err)
		}
	}
}
