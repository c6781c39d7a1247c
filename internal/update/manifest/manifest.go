// Package manifest owns the update repository's manifest.json: the OS
// releases it offers (variant, arch, version, max version, waves, images),
// the migrations between datastore versions, wave policies, and choosing the
// update a node should take. The format is Bottlerocket's.
package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/gantry-os/gantry/pkg/version"
	"math"
	"os"
	"sort"
	"time"
)

// MaxSeed bounds the wave seed space: seeds are 0..MaxSeed-1.
const MaxSeed = 2048

// Images names the targets of one release's partition images.
type Images struct {
	Boot string `json:"boot"`
	Root string `json:"root"`
	Hash string `json:"hash"`
}

// Update is one release offered to a variant and architecture.
type Update struct {
	Variant    string               `json:"variant"`
	Arch       string               `json:"arch"`
	Version    version.Semver       `json:"version"`
	MaxVersion version.Semver       `json:"max_version"`
	Waves      map[uint32]time.Time `json:"waves"`
	Images     Images               `json:"images"`
}

// Manifest is the whole manifest.json.
type Manifest struct {
	Updates    []Update
	Migrations map[Transition][]string
}

type wireManifest struct {
	Updates    []Update            `json:"updates"`
	Migrations map[string][]string `json:"migrations"`
}

// Parse reads a manifest document. Unknown fields are ignored, as
// Bottlerocket's client does. Migration keys must be "(FROM, TO)" with
// FROM < TO, each once, naming plain file names.
func Parse(b []byte) (*Manifest, error) {
	var w wireManifest
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	m := &Manifest{Updates: w.Updates, Migrations: map[Transition][]string{}}
	for key, names := range w.Migrations {
		t, err := ParseTransition(key)
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		if _, dup := m.Migrations[t]; dup {
			return nil, fmt.Errorf("manifest: transition %s is listed twice", t)
		}
		for _, n := range names {
			if err := checkName(n); err != nil {
				return nil, fmt.Errorf("manifest: transition %s: %w", t, err)
			}
		}
		m.Migrations[t] = append([]string{}, names...)
	}
	for i, u := range m.Updates {
		if u.Variant == "" || u.Arch == "" {
			return nil, fmt.Errorf("manifest: update %d has no variant or arch", i)
		}
		if err := checkWaves(u.Waves); err != nil {
			return nil, fmt.Errorf("manifest: update %s %s %s: %w", u.Variant, u.Arch, u.Version, err)
		}
	}
	return m, nil
}

// Load reads and parses the manifest file at path.
func Load(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// MarshalJSON writes the manifest with migration keys as "(X, Y)".
func (m *Manifest) MarshalJSON() ([]byte, error) {
	w := wireManifest{Updates: m.Updates, Migrations: map[string][]string{}}
	if w.Updates == nil {
		w.Updates = []Update{}
	}
	for t, names := range m.Migrations {
		if names == nil {
			names = []string{}
		}
		w.Migrations[t.String()] = names
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// checkWaves requires wave times to increase with their seeds.
func checkWaves(w map[uint32]time.Time) error {
	keys := waveKeys(w)
	for i := 1; i < len(keys); i++ {
		if !w[keys[i]].After(w[keys[i-1]]) {
			return fmt.Errorf("waves unordered: seed %d starts at %s, not after seed %d's %s",
				keys[i], w[keys[i]].Format(time.RFC3339), keys[i-1], w[keys[i-1]].Format(time.RFC3339))
		}
		if keys[i] > MaxSeed {
			return fmt.Errorf("wave seed %d is above %d", keys[i], MaxSeed)
		}
	}
	return nil
}

func waveKeys(w map[uint32]time.Time) []uint32 {
	keys := make([]uint32, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

// Wave is one step of a wave policy: after StartAfter, FleetPercentage of
// the fleet (cumulative) may update.
type Wave struct {
	StartAfter      time.Duration
	FleetPercentage int
}

// DefaultWaves is Bottlerocket's default policy: 1%, 5%, 15%, 40%, 60%,
// 90%, 100% of the fleet after 1h, 4h, 1d, 2d, 4d, 5d, 6d.
func DefaultWaves() []Wave {
	d := 24 * time.Hour
	return []Wave{{time.Hour, 1}, {4 * time.Hour, 5}, {d, 15}, {2 * d, 40}, {4 * d, 60}, {5 * d, 90}, {6 * d, 100}}
}

// SetWaves computes an update's waves from a policy starting at start: wave
// i opens at start+StartAfter for seeds from the previous wave's bound, and
// each wave's bound is floor(percentage/100 × 2048) computed in float32, as
// Bottlerocket does (so the last wave's percentage is never stored).
func SetWaves(policy []Wave, start time.Time) (map[uint32]time.Time, error) {
	out := map[uint32]time.Time{}
	var seed uint32
	for i, w := range policy {
		if w.FleetPercentage < 1 || w.FleetPercentage > 100 {
			return nil, fmt.Errorf("wave %d: fleet percentage %d is not 1-100", i, w.FleetPercentage)
		}
		out[seed] = start.Add(w.StartAfter).UTC()
		seed = uint32(math.Floor(float64(float32(w.FleetPercentage) / 100 * MaxSeed)))
	}
	if err := checkWaves(out); err != nil {
		return nil, err
	}
	return out, nil
}

// WaveReady reports whether a node with this seed may take the update at
// now. It keeps Bottlerocket's arithmetic, quirks included: inside a wave a
// node's time is T(lo) + step × seed with the absolute seed, so beyond the
// first wave nodes effectively wait for the wave's end.
func (u Update) WaveReady(seed uint32, now time.Time) bool {
	if len(u.Waves) == 0 {
		return true
	}
	var lo, hi *uint32
	for _, k := range waveKeys(u.Waves) {
		k := k
		if k < seed {
			lo = &k
		} else if k <= MaxSeed && hi == nil {
			hi = &k
		}
	}
	switch {
	case lo == nil && hi != nil:
		return true // the initial wave
	case lo != nil && hi != nil:
		tlo, thi := u.Waves[*lo], u.Waves[*hi]
		if !now.Before(thi) {
			return true
		}
		if now.Before(tlo) {
			return false
		}
		step := thi.Sub(tlo) / time.Duration(*hi-*lo)
		return !now.Before(tlo.Add(step * time.Duration(seed)))
	case lo != nil:
		return !now.Before(u.Waves[*lo])
	}
	return true
}

// Query describes the node asking for an update.
type Query struct {
	Variant     string
	Arch        string
	Running     version.Semver
	Seed        uint32
	VersionLock string          // "latest" or a version (optional leading v)
	IgnoreWaves bool            // take updates regardless of waves
	Image       *version.Semver // a specific version (updog --image)
	Now         time.Time
}

// Applicable lists the updates for the query's variant and arch whose
// version is within their max_version and whose wave has reached the node
// (unless waves are ignored), newest first.
func (m *Manifest) Applicable(q Query) []Update {
	var out []Update
	for _, u := range m.Updates {
		if u.Variant != q.Variant || u.Arch != q.Arch || u.Version.Compare(u.MaxVersion) > 0 {
			continue
		}
		if !q.IgnoreWaves && !u.WaveReady(q.Seed, q.Now) {
			continue
		}
		out = append(out, u)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Version.Compare(out[j].Version) > 0 })
	return out
}

// Choose picks the update the node should take, or nil: the --image
// version if given; else the version lock's version if it is not the
// running one; else, for "latest", the newest applicable update that is
// newer than the running version or whose max_version is below it (which
// pulls nodes back from a withdrawn release).
func (m *Manifest) Choose(q Query) (*Update, error) {
	apps := m.Applicable(q)
	find := func(v version.Semver) *Update {
		for i := range apps {
			if apps[i].Version == v {
				return &apps[i]
			}
		}
		return nil
	}
	if q.Image != nil {
		return find(*q.Image), nil
	}
	if q.VersionLock != "" && q.VersionLock != "latest" {
		lock, err := version.Parse(q.VersionLock)
		if err != nil {
			return nil, fmt.Errorf("version lock: %w", err)
		}
		if lock == q.Running {
			return nil, nil
		}
		return find(lock), nil
	}
	for i := range apps {
		u := &apps[i]
		if q.Running.Compare(u.Version) < 0 || q.Running.Compare(u.MaxVersion) > 0 {
			return u, nil
		}
	}
	return nil, nil
}

// AddUpdate adds (or replaces) a release. Its max_version is the higher of
// its version and the current max_version of that variant and arch, and
// becomes the max_version of all their releases; maxVersion, when given,
// sets it explicitly.
func (m *Manifest) AddUpdate(u Update, maxVersion *version.Semver) {
	max := u.Version
	for _, o := range m.Updates {
		if o.Variant == u.Variant && o.Arch == u.Arch && o.MaxVersion.Compare(max) > 0 {
			max = o.MaxVersion
		}
	}
	if maxVersion != nil {
		max = *maxVersion
	}
	kept := m.Updates[:0]
	for _, o := range m.Updates {
		if !(o.Variant == u.Variant && o.Arch == u.Arch && o.Version == u.Version) {
			kept = append(kept, o)
		}
	}
	m.Updates = append(kept, u)
	for i := range m.Updates {
		if m.Updates[i].Variant == u.Variant && m.Updates[i].Arch == u.Arch {
			m.Updates[i].MaxVersion = max
		}
	}
	sort.SliceStable(m.Updates, func(i, j int) bool { return m.Updates[i].Version.Compare(m.Updates[j].Version) > 0 })
}
