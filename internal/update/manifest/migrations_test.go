package manifest

import (
	"errors"
	"github.com/gantry-os/gantry/pkg/version"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func v(s string) version.Semver {
	ver, err := version.Parse(s)
	if err != nil {
		panic(err)
	}
	return ver
}

const chainManifest = `{
  "updates": [{"variant": "metal-dev", "arch": "x86_64", "version": "1.3.0"}],
  "migrations": {
    "(1.0.0, 1.1.0)": ["migrate_v1.1.0_a", "migrate_v1.1.0_b"],
    "(1.1.0, 1.2.0)": ["migrate_v1.2.0_c"],
    "(1.1.0,  1.3.0)": ["migrate_v1.3.0_skip"],
    "(1.2.0, 1.3.0)": ["migrate_v1.3.0_d"],
    "(1.3.0, 1.3.1)": [],
    "(1.3.1, 1.4.0)": ["migrate_v1.4.0_e"],
    "(2.0.0, 2.1.0)": ["migrate_v2.1.0_f"]
  }
}`

func TestFindMigrations(t *testing.T) {
	m, err := Parse([]byte(chainManifest))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		from, to string
		want     []string
		wantErr  bool
	}{
		{name: "same version", from: "1.1.0", to: "1.1.0", want: []string{}},
		{name: "one hop forward", from: "1.0.0", to: "1.1.0", want: []string{"migrate_v1.1.0_a", "migrate_v1.1.0_b"}},
		{name: "one hop backward is reversed", from: "1.1.0", to: "1.0.0", want: []string{"migrate_v1.1.0_b", "migrate_v1.1.0_a"}},
		{name: "skip-ahead takes the highest to within the target", from: "1.0.0", to: "1.3.0",
			want: []string{"migrate_v1.1.0_a", "migrate_v1.1.0_b", "migrate_v1.3.0_skip"}},
		{name: "without skip-ahead past the target", from: "1.0.0", to: "1.2.0",
			want: []string{"migrate_v1.1.0_a", "migrate_v1.1.0_b", "migrate_v1.2.0_c"}},
		{name: "empty hop in the middle", from: "1.1.0", to: "1.4.0",
			want: []string{"migrate_v1.3.0_skip", "migrate_v1.4.0_e"}},
		{name: "empty hop only", from: "1.3.0", to: "1.3.1", want: []string{}},
		{name: "long backward", from: "1.4.0", to: "1.0.0",
			want: []string{"migrate_v1.4.0_e", "migrate_v1.3.0_skip", "migrate_v1.1.0_b", "migrate_v1.1.0_a"}},
		{name: "from a version that starts no transition", from: "1.0.5", to: "1.1.0", wantErr: true},
		{name: "target between two hops", from: "1.0.0", to: "1.0.5", wantErr: true},
		{name: "dead end forward", from: "1.4.0", to: "2.1.0", wantErr: true},
		{name: "dead end backward", from: "2.1.0", to: "1.4.0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := m.FindMigrations(v(tt.from), v(tt.to))
			if tt.wantErr {
				if !errors.Is(err, ErrMissingMigration) {
					t.Fatalf("got %v, %v; want ErrMissingMigration", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		want    map[Transition][]string
		wantErr string
	}{
		{name: "no migrations field", doc: `{"updates": []}`, want: map[Transition][]string{}},
		{name: "null list is empty", doc: `{"migrations": {"(1.0.0, 1.0.1)": null}}`,
			want: map[Transition][]string{{v("1.0.0"), v("1.0.1")}: {}}},
		{name: "v prefix and spaces", doc: `{"migrations": {"( v1.0.0 ,v1.1.0 )": ["m"]}}`,
			want: map[Transition][]string{{v("1.0.0"), v("1.1.0")}: {"m"}}},
		{name: "not JSON", doc: `{`, wantErr: "parse manifest"},
		{name: "bad key", doc: `{"migrations": {"1.0.0 -> 1.1.0": []}}`, wantErr: "not (FROM, TO)"},
		{name: "downward key", doc: `{"migrations": {"(1.1.0, 1.0.0)": []}}`, wantErr: "higher version"},
		{name: "self key", doc: `{"migrations": {"(1.1.0, 1.1.0)": []}}`, wantErr: "higher version"},
		{name: "duplicate transition", doc: `{"migrations": {"(1.0.0, 1.1.0)": [], "(1.0.0,1.1.0)": []}}`, wantErr: "twice"},
		{name: "path in a name", doc: `{"migrations": {"(1.0.0, 1.1.0)": ["../../bin/sh"]}}`, wantErr: "plain file name"},
		{name: "empty name", doc: `{"migrations": {"(1.0.0, 1.1.0)": [""]}}`, wantErr: "plain file name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.doc))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Migrations, tt.want) {
				t.Errorf("got %v, want %v", m.Migrations, tt.want)
			}
		})
	}
}

func TestLoadNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(p, []byte(`{"migrations": {"x": []}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("err = %v, want one naming %s", err, p)
	}
	if _, err := Load(p + ".missing"); err == nil {
		t.Error("a missing manifest loaded")
	}
}
