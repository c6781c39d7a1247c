package datastore

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	tests := []struct {
		in      string
		typ     KeyType
		segs    []string
		name    string
		wantErr string
	}{
		{in: "settings.motd", segs: []string{"settings", "motd"}, name: "settings.motd"},
		{in: `settings.kernel.sysctl."vm.max_map_count"`, segs: []string{"settings", "kernel", "sysctl", "vm.max_map_count"}, name: `settings.kernel.sysctl."vm.max_map_count"`},
		{in: `a."b".c`, segs: []string{"a", "b", "c"}, name: "a.b.c"},
		{in: `a."b.c/d"`, segs: []string{"a", "b.c/d"}, name: `a."b.c/d"`},
		{in: "x_y-z/w", segs: []string{"x_y-z/w"}, name: "x_y-z/w"},
		{in: "affected-services", typ: MetaKey, segs: []string{"affected-services"}, name: "affected-services"},
		{in: "", wantErr: "empty"},
		{in: "a..b", wantErr: "empty segment"},
		{in: "a.", wantErr: "trailing dot"},
		{in: ".a", wantErr: "empty segment"},
		{in: `a."b`, wantErr: "unbalanced quotes"},
		{in: "a.b c", wantErr: `character ' '`},
		{in: "a.b=c", wantErr: `character '='`},
		{in: `a.""`, wantErr: "empty segment"},
		{in: "a.b", typ: MetaKey, wantErr: "exactly one segment"},
		{in: strings.Repeat("a", 256), wantErr: "longer than 255"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			k, err := ParseKey(tt.typ, tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseKey(%q) error = %v, want containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(k.Segments(), tt.segs) || k.Name() != tt.name {
				t.Fatalf("ParseKey(%q) = %q %v, want %q %v", tt.in, k.Name(), k.Segments(), tt.name, tt.segs)
			}
		})
	}
}

func TestAncestorsAndPrefix(t *testing.T) {
	k := MustKey(DataKey, `settings.kernel.sysctl."a.b"`)
	var names []string
	for _, a := range k.Ancestors() {
		names = append(names, a.Name())
	}
	want := []string{"settings", "settings.kernel", "settings.kernel.sysctl", `settings.kernel.sysctl."a.b"`}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("Ancestors = %v, want %v", names, want)
	}
	if !k.StartsWithSegments(MustKey(DataKey, "settings.kernel")) {
		t.Error("settings.kernel should be a segment prefix")
	}
	if k.StartsWithSegments(MustKey(DataKey, "settings.kern")) {
		t.Error("settings.kern is not a segment prefix")
	}
}

// FuzzParseKey checks that parsing never panics and that every accepted key
// round-trips through its canonical name.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"settings.motd", `a."b.c".d`, `"`, "a..b", ".", `a."".b`, "a.b/c_d-e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(DataKey, s)
		if err != nil {
			return
		}
		k2, err := ParseKey(DataKey, k.Name())
		if err != nil {
			t.Fatalf("canonical name %q of %q does not parse: %v", k.Name(), s, err)
		}
		if !reflect.DeepEqual(k.Segments(), k2.Segments()) {
			t.Fatalf("round trip of %q changed segments: %v vs %v", s, k.Segments(), k2.Segments())
		}
	})
}
