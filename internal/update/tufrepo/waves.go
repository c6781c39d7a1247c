package tufrepo

import (
	"fmt"
	"github.com/gantry-os/gantry/pkg/version"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/gantry-os/gantry/internal/update/manifest"
)

const day = 24 * time.Hour

// WavePolicies are the named wave policies, Bottlerocket's shipped ones.
// "none" is no waves at all: every node may take the release at once.
func WavePolicies() map[string][]manifest.Wave {
	return map[string][]manifest.Wave{
		"default":     manifest.DefaultWaves(),
		"accelerated": {wave(time.Hour, 3), wave(4*time.Hour, 12), wave(8*time.Hour, 40), wave(16*time.Hour, 80), wave(day, 100)},
		"ohno":        {wave(30*time.Minute, 5), wave(time.Hour, 25), wave(2*time.Hour, 50), wave(150*time.Minute, 90), wave(3*time.Hour, 100)},
		"slow-roll":   {wave(time.Hour, 1), wave(day, 5), wave(3*day, 15), wave(7*day, 40), wave(9*day, 60), wave(12*day, 90), wave(13*day, 100)},
		"none":        nil,
	}
}

func wave(after time.Duration, pct int) manifest.Wave {
	return manifest.Wave{StartAfter: after, FleetPercentage: pct}
}

// LoadWaves returns the named policy, or reads a wave file (TOML).
func LoadWaves(nameOrPath string) ([]manifest.Wave, error) {
	if w, ok := WavePolicies()[nameOrPath]; ok {
		return w, nil
	}
	b, err := os.ReadFile(nameOrPath)
	if err != nil {
		return nil, fmt.Errorf("wave policy %q is not default, accelerated, ohno, slow-roll or none, nor a readable file: %w", nameOrPath, err)
	}
	w, err := ParseWaves(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", nameOrPath, err)
	}
	return w, nil
}

// ParseWaves reads a wave policy in Bottlerocket's format:
//
//	[[waves]]
//	start_after = "1 hour"
//	fleet_percentage = 1
//
// Offsets are as ParseOffset reads them. Percentages must grow and end at 100.
func ParseWaves(b []byte) ([]manifest.Wave, error) {
	var doc struct {
		Waves []struct {
			StartAfter      string `toml:"start_after"`
			FleetPercentage int    `toml:"fleet_percentage"`
		} `toml:"waves"`
	}
	md, err := toml.Decode(string(b), &doc)
	if err != nil {
		return nil, fmt.Errorf("wave policy: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("wave policy: unknown key %s", und[0])
	}
	if len(doc.Waves) == 0 {
		return nil, fmt.Errorf("wave policy: no [[waves]]")
	}
	out := make([]manifest.Wave, 0, len(doc.Waves))
	for i, w := range doc.Waves {
		d, err := ParseOffset(w.StartAfter)
		if err != nil {
			return nil, fmt.Errorf("wave policy: wave %d: %w", i+1, err)
		}
		if w.FleetPercentage < 1 || w.FleetPercentage > 100 {
			return nil, fmt.Errorf("wave policy: wave %d: fleet_percentage %d is not 1-100", i+1, w.FleetPercentage)
		}
		if i > 0 {
			prev := out[i-1]
			if w.FleetPercentage <= prev.FleetPercentage {
				return nil, fmt.Errorf("wave policy: wave %d: fleet_percentage %d does not grow from %d", i+1, w.FleetPercentage, prev.FleetPercentage)
			}
			if d <= prev.StartAfter {
				return nil, fmt.Errorf("wave policy: wave %d: start_after %s is not after %s", i+1, w.StartAfter, doc.Waves[i-1].StartAfter)
			}
		}
		out = append(out, manifest.Wave{StartAfter: d, FleetPercentage: w.FleetPercentage})
	}
	if last := out[len(out)-1]; last.FleetPercentage != 100 {
		return nil, fmt.Errorf("wave policy: the last wave covers %d%% of the fleet, not 100%%", last.FleetPercentage)
	}
	return out, nil
}

var (
	offsetPartRe = regexp.MustCompile(`(\d+)\s*([a-z]+)\s*`)
	unitDur      = map[string]time.Duration{
		"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
		"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
		"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
		"d": day, "day": day, "days": day,
		"w": 7 * day, "week": 7 * day, "weeks": 7 * day,
	}
)

// ParseOffset reads a duration: Go's syntax ("90m", "1h30m"), or numbers
// with units, optionally after "in" ("1 hour", "2 days", "in 2 weeks",
// "1d 12h"). Units run from seconds to weeks.
func ParseOffset(s string) (time.Duration, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSpace(strings.TrimPrefix(t, "in "))
	if d, err := time.ParseDuration(t); err == nil {
		return d, nil
	}
	var total time.Duration
	rest := t
	for rest != "" {
		loc := offsetPartRe.FindStringSubmatchIndex(rest)
		if loc == nil || loc[0] != 0 {
			return 0, fmt.Errorf("duration %q is not like \"90m\", \"4 hours\" or \"2 weeks\"", s)
		}
		n, err := strconv.ParseInt(rest[loc[2]:loc[3]], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %w", s, err)
		}
		unit, ok := unitDur[rest[loc[4]:loc[5]]]
		if !ok {
			return 0, fmt.Errorf("duration %q: unknown unit %q", s, rest[loc[4]:loc[5]])
		}
		total += time.Duration(n) * unit
		rest = rest[loc[1]:]
	}
	if t == "" {
		return 0, fmt.Errorf("empty duration")
	}
	return total, nil
}

// ParseMigrationsTOML reads the [migrations] table of a Release.toml:
//
//	[migrations]
//	"(1.0.0, 1.1.0)" = ["migrate_v1.1.0_foo.zst"]
//	"(1.1.0, 1.2.0)" = []
//
// Other tables and keys are ignored.
func ParseMigrationsTOML(b []byte) (map[manifest.Transition][]string, error) {
	var doc struct {
		Migrations map[string][]string `toml:"migrations"`
	}
	if _, err := toml.Decode(string(b), &doc); err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	out := map[manifest.Transition][]string{}
	for k, names := range doc.Migrations {
		t, err := manifest.ParseTransition(k)
		if err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		if _, dup := out[t]; dup {
			return nil, fmt.Errorf("migrations: transition %s is listed twice", t)
		}
		out[t] = append([]string{}, names...)
	}
	return out, nil
}

// ParseTransitionFlag reads "(FROM, TO)=name1,name2" (an empty list after
// "=" means the hop needs no migration).
func ParseTransitionFlag(s string) (manifest.Transition, []string, error) {
	i := strings.LastIndex(s, "=")
	if i < 0 {
		return manifest.Transition{}, nil, fmt.Errorf("transition %q is not \"(FROM, TO)=NAME,...\"", s)
	}
	t, err := manifest.ParseTransition(strings.TrimSpace(s[:i]))
	if err != nil {
		return manifest.Transition{}, nil, err
	}
	names := []string{}
	for _, n := range strings.Split(s[i+1:], ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return t, names, nil
}

// parseVersion reads x.y.z with an optional leading v.
func parseVersion(what, s string) (version.Semver, error) {
	v, err := version.Parse(s)
	if err != nil {
		return v, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}
