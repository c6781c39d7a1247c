package manifest

import (
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/pkg/version"
	"regexp"
	"slices"
	"strings"
)

// ErrMissingMigration is wrapped by FindMigrations when the manifest has no
// transition leading on from a version towards the target.
var ErrMissingMigration = errors.New("missing migration")

// Transition is one hop of the manifest: the migrations that take a
// datastore from version From to version To.
type Transition struct{ From, To version.Semver }

func (t Transition) String() string { return fmt.Sprintf("(%s, %s)", t.From, t.To) }

var transitionRe = regexp.MustCompile(`^\(\s*(v?\d+\.\d+\.\d+)\s*,\s*(v?\d+\.\d+\.\d+)\s*\)$`)

// ParseTransition parses a manifest key such as "(1.0.0, 1.1.0)".
func ParseTransition(s string) (Transition, error) {
	m := transitionRe.FindStringSubmatch(s)
	if m == nil {
		return Transition{}, fmt.Errorf("migration key %q is not (FROM, TO)", s)
	}
	from, err := version.Parse(m[1])
	if err != nil {
		return Transition{}, fmt.Errorf("migration key %q: %w", s, err)
	}
	to, err := version.Parse(m[2])
	if err != nil {
		return Transition{}, fmt.Errorf("migration key %q: %w", s, err)
	}
	if to.Compare(from) <= 0 {
		return Transition{}, fmt.Errorf("migration key %q does not go to a higher version", s)
	}
	return Transition{From: from, To: to}, nil
}

func checkName(n string) error {
	if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\x00") {
		return fmt.Errorf("migration name %q is not a plain file name", n)
	}
	return nil
}

// FindMigrations returns the migrations that take a datastore from version
// from to version to, in the order to run them. It walks up from the lower
// of the two versions: at each version it takes the transition starting
// there whose To is the highest not above the higher version, appends its
// list and moves to its To. A version with no such transition is a dead end
// (ErrMissingMigration). For a downgrade the list is reversed, to be run
// backward. Equal versions need nothing.
func (m *Manifest) FindMigrations(from, to version.Semver) ([]string, error) {
	lo, hi := from, to
	if from.Compare(to) > 0 {
		lo, hi = to, from
	}
	out := []string{}
	for cur := lo; cur.Compare(hi) < 0; {
		var best *Transition
		for t := range m.Migrations {
			if t.From != cur || t.To.Compare(hi) > 0 {
				continue
			}
			if best == nil || t.To.Compare(best.To) > 0 {
				best = &t
			}
		}
		if best == nil {
			return nil, fmt.Errorf("no migration in the manifest starts at %s and stays within %s: %w", cur, hi, ErrMissingMigration)
		}
		out = append(out, m.Migrations[*best]...)
		cur = best.To
	}
	if from.Compare(to) > 0 {
		slices.Reverse(out)
	}
	return out, nil
}
