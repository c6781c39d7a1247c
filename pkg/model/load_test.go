package model

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	custom, err := MarshalGroupsFile("acme-edge", []string{"motd", "ntp", "kernel"})
	if err != nil {
		t.Fatal(err)
	}
	customPath := write("custom.json", string(custom))
	for _, tc := range []struct {
		name, variant, path string
		wantVariant         string
		wantGroups          []string
		wantErr             string
	}{
		{"custom variant from its file", "", customPath, "acme-edge", []string{"kernel", "motd", "ntp"}, ""},
		{"file and name agree", "acme-edge", customPath, "acme-edge", []string{"kernel", "motd", "ntp"}, ""},
		{"file and name disagree", "metal-dev", customPath, "", nil, "variant acme-edge's, not metal-dev's"},
		{"no file: built-in", "metal-dev", filepath.Join(dir, "absent.json"), "metal-dev", nil, ""},
		{"no file: unknown variant", "acme-edge", filepath.Join(dir, "absent.json"), "", nil, `unknown variant "acme-edge"`},
		{"unknown group", "", write("bad-group.json", `{"variant":"x","groups":["motd","nope"]}`), "", nil, `unknown settings group "nope"`},
		{"no variant", "", write("no-variant.json", `{"groups":["motd"]}`), "", nil, `"variant" is missing`},
		{"no groups", "", write("no-groups.json", `{"variant":"x","groups":[]}`), "", nil, `"groups" is empty`},
		{"not JSON", "", write("junk.json", `groups = ["motd"]`), "", nil, "junk.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Load(tc.variant, tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Variant() != tc.wantVariant {
				t.Errorf("variant %q, want %q", m.Variant(), tc.wantVariant)
			}
			want := tc.wantGroups
			if want == nil {
				want = slices.Clone(BuiltinVariants()[tc.wantVariant])
				slices.Sort(want)
			}
			if got := m.GroupNames(); !slices.Equal(got, want) {
				t.Errorf("groups %v, want %v", got, want)
			}
		})
	}
	// The custom model refuses a group the variant does not have.
	m, _ := Load("", customPath)
	if err := m.CheckSettings(map[string]any{"host-containers": map[string]any{}}); err == nil || !strings.Contains(err.Error(), "acme-edge") {
		t.Errorf("host-containers accepted by acme-edge: %v", err)
	}
}

func TestMarshalGroupsFileRefusesUnknownGroups(t *testing.T) {
	if _, err := MarshalGroupsFile("x", []string{"motd", "warp-drive"}); err == nil {
		t.Fatal("unknown group accepted")
	}
}
