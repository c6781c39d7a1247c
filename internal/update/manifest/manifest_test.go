package manifest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func TestSetWavesDefaultPolicy(t *testing.T) {
	w, err := SetWaves(DefaultWaves(), t0)
	if err != nil {
		t.Fatal(err)
	}
	d := 24 * time.Hour
	want := map[uint32]time.Duration{0: time.Hour, 20: 4 * time.Hour, 102: d, 307: 2 * d, 819: 4 * d, 1228: 5 * d, 1843: 6 * d}
	if len(w) != len(want) {
		t.Fatalf("waves = %v", w)
	}
	for k, off := range want {
		if !w[k].Equal(t0.Add(off)) {
			t.Errorf("wave %d at %v, want %v", k, w[k], t0.Add(off))
		}
	}
	if _, err := SetWaves([]Wave{{time.Hour, 0}}, t0); err == nil {
		t.Error("0% wave accepted")
	}
	if _, err := SetWaves([]Wave{{2 * time.Hour, 10}, {time.Hour, 20}}, t0); err == nil || !strings.Contains(err.Error(), "unordered") {
		t.Errorf("unordered waves: %v", err)
	}
}

func TestWaveReady(t *testing.T) {
	u := Update{Waves: map[uint32]time.Time{0: t0, 100: t0.Add(100 * time.Minute), 200: t0.Add(200 * time.Minute)}}
	tests := []struct {
		seed  uint32
		now   time.Duration
		ready bool
	}{
		{0, -time.Hour, true},         // initial wave: always ready
		{50, 49 * time.Minute, false}, // first wave spreads linearly: seed 50 at +50m
		{50, 50 * time.Minute, true},
		{150, 150 * time.Minute, false}, // quirk: absolute seed, so 100m + 150m > the wave's end
		{150, 200 * time.Minute, true},  // ready at the wave's end
		{150, 99 * time.Minute, false},  // before the wave starts
		{100, 100 * time.Minute, true},  // a seed equal to a key belongs to the wave ending there
		{300, 199 * time.Minute, false}, // last wave: ready at its start
		{300, 200 * time.Minute, true},
	}
	for _, tt := range tests {
		if got := u.WaveReady(tt.seed, t0.Add(tt.now)); got != tt.ready {
			t.Errorf("WaveReady(seed %d, +%v) = %v, want %v", tt.seed, tt.now, got, tt.ready)
		}
	}
	if !(Update{}).WaveReady(1000, t0) {
		t.Error("no waves must mean ready")
	}
}

func TestChoose(t *testing.T) {
	mk := func(ver, max string, waveStart time.Duration) Update {
		return Update{Variant: "metal-dev", Arch: "x86_64", Version: v(ver), MaxVersion: v(max),
			Waves: map[uint32]time.Time{0: t0.Add(waveStart), 1: t0.Add(waveStart + time.Hour)}}
	}
	m := &Manifest{Updates: []Update{mk("1.0.0", "1.2.0", 0), mk("1.1.0", "1.2.0", 0), mk("1.2.0", "1.2.0", 48*time.Hour),
		{Variant: "other", Arch: "x86_64", Version: v("9.0.0"), MaxVersion: v("9.0.0")}}}
	now := t0.Add(2 * time.Hour)
	ver := func(u *Update) string {
		if u == nil {
			return "none"
		}
		return u.Version.String()
	}
	img := v("1.0.0")
	tests := []struct {
		name string
		q    Query
		want string
	}{
		{"latest in wave", Query{Running: v("1.0.0"), Seed: 500, VersionLock: "latest", Now: now}, "1.1.0"},
		{"ignore waves", Query{Running: v("1.0.0"), Seed: 500, VersionLock: "latest", IgnoreWaves: true, Now: now}, "1.2.0"},
		{"up to date", Query{Running: v("1.1.0"), Seed: 500, VersionLock: "latest", Now: now}, "none"},
		{"pulled back from a withdrawn release", Query{Running: v("1.3.0"), Seed: 500, VersionLock: "latest", Now: now}, "1.1.0"},
		{"version lock downgrade", Query{Running: v("1.1.0"), Seed: 500, VersionLock: "v1.0.0", Now: now}, "1.0.0"},
		{"version lock is running", Query{Running: v("1.0.0"), Seed: 500, VersionLock: "1.0.0", Now: now}, "none"},
		{"version lock not published", Query{Running: v("1.0.0"), Seed: 500, VersionLock: "1.0.5", Now: now}, "none"},
		{"image", Query{Running: v("1.1.0"), Seed: 500, VersionLock: "latest", Image: &img, Now: now}, "1.0.0"},
	}
	for _, tt := range tests {
		tt.q.Variant, tt.q.Arch = "metal-dev", "x86_64"
		got, err := m.Choose(tt.q)
		if err != nil || ver(got) != tt.want {
			t.Errorf("%s: Choose = %s, %v; want %s", tt.name, ver(got), err, tt.want)
		}
	}
	if _, err := m.Choose(Query{Variant: "metal-dev", Arch: "x86_64", VersionLock: "soon"}); err == nil {
		t.Error("bad version lock accepted")
	}
}

func TestAddUpdateAndRoundTrip(t *testing.T) {
	m := &Manifest{Migrations: map[Transition][]string{{v("1.0.0"), v("1.1.0")}: {"migrate_v1.1.0_x"}, {v("1.1.0"), v("1.2.0")}: nil}}
	m.AddUpdate(Update{Variant: "metal-dev", Arch: "x86_64", Version: v("1.1.0"), Images: Images{"b", "r", "h"}}, nil)
	m.AddUpdate(Update{Variant: "metal-dev", Arch: "x86_64", Version: v("1.0.0")}, nil)
	m.AddUpdate(Update{Variant: "metal-k8s-1.37", Arch: "x86_64", Version: v("2.0.0")}, nil)
	for _, u := range m.Updates {
		want := "1.1.0"
		if u.Variant == "metal-k8s-1.37" {
			want = "2.0.0"
		}
		if u.MaxVersion.String() != want {
			t.Errorf("%s %s max_version %s, want %s", u.Variant, u.Version, u.MaxVersion, want)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"(1.0.0, 1.1.0)":["migrate_v1.1.0_x"]`) || !strings.Contains(string(b), `"(1.1.0, 1.2.0)":[]`) {
		t.Fatalf("migration keys: %s", b)
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Updates) != 3 || len(back.Migrations) != 2 || back.Updates[0].Images.Root == "" && back.Updates[1].Images.Root == "" {
		t.Fatalf("round trip lost data: %+v", back)
	}
	if _, err := Parse([]byte(`{"updates": [{"variant": "x", "arch": "y", "version": "1.0", "max_version": "1.0.0"}]}`)); err == nil {
		t.Error("bad version accepted")
	}
	if _, err := Parse([]byte(`{"updates": [{"variant": "x", "arch": "y", "version": "1.0.0", "max_version": "1.0.0", "waves": {"5": "2026-01-02T00:00:00Z", "9": "2026-01-01T00:00:00Z"}}]}`)); err == nil {
		t.Error("unordered waves accepted")
	}
}
