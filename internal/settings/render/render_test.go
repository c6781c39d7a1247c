package render

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestHelpers(t *testing.T) {
	ctx := Context{"settings": map[string]any{
		"motd":   "hi",
		"kernel": map[string]any{"sysctl": map[string]any{"vm.x": "1", "a.b": "2"}},
		"list":   []any{"a", "b"},
		"secret": "aGVsbG8=",
		"url":    "https://[fe80::1]:8443/path",
		"n":      json.Number("42"),
	}}
	tests := []struct{ tmpl, want string }{
		{`{{ get .settings "motd" }}`, "hi"},
		{`{{ get .settings "kernel.sysctl.\"vm.x\"" }}`, "1"},
		{`{{ get .settings "nope.deeper" | default "dflt" }}`, "dflt"},
		{`{{ has .settings "kernel" }} {{ has .settings "nope" }}`, "true false"},
		{`{{ join ", " .settings.list }}`, "a, b"},
		{`{{ joinQuoted ", " .settings.list }}`, `"a", "b"`},
		{`{{ joinMap "=" "," .settings.kernel.sysctl }}`, "a.b=2,vm.x=1"},
		{`{{ base64Decode .settings.secret }}`, "hello"},
		{`{{ urlHost .settings.url }} {{ urlPort .settings.url }} {{ urlPort "example.com" }} {{ urlHost "10.0.0.1:80" }}`, "fe80::1 8443 80 10.0.0.1"},
		{`{{ hostPort "fe80::1" 443 }}`, "[fe80::1]:443"},
		{`{{ goarch "x86_64" }} {{ goarch "aarch64" }}`, "amd64 arm64"},
		{`{{ toJSON .settings.list }}`, `["a","b"]`},
		{`{{ toTOML .settings.kernel.sysctl }}`, `"a.b" = "2"` + "\n" + `"vm.x" = "1"`},
		{`{{ toTOML "x\"y" }} {{ toTOML .settings.n }}`, `"x\"y" 42`},
		{`{{ envQuote "a \"b\"\nc" }}`, `"a \"b\"\nc"`},
		{`{{ range keys .settings.kernel.sysctl }}{{ . }};{{ end }}`, "a.b;vm.x;"},
		{`{{ $l := append (list "x") "y" }}{{ join "" $l }}`, "xy"},
		{`{{ kindIs "slice" .settings.list }} {{ kindIs "map" .settings.list }} {{ kindIs "number" .settings.n }}`, "true false true"},
	}
	for _, tt := range tests {
		tmpl, err := Parse("t", tt.tmpl)
		if err != nil {
			t.Fatalf("%s: %v", tt.tmpl, err)
		}
		got, err := Execute(tmpl, ctx)
		if err != nil {
			t.Fatalf("%s: %v", tt.tmpl, err)
		}
		if string(got) != tt.want {
			t.Errorf("%s = %q, want %q", tt.tmpl, got, tt.want)
		}
	}
}

func TestHelperErrors(t *testing.T) {
	ctx := Context{"settings": map[string]any{"motd": "hi", "n": json.Number("1")}}
	for tmpl, want := range map[string]string{
		`{{ .settings.missing }}`:                          "map has no entry",
		`{{ base64Decode "!!" }}`:                          "base64Decode",
		`{{ required "motd is required" .settings.nope }}`: "map has no entry",
		`{{ required "need it" (get .settings "nope") }}`:  "need it",
		`{{ join "," .settings.motd }}`:                    "want a list",
		`{{ joinMap "=" "," .settings.motd }}`:             "want a table",
	} {
		tm, err := Parse("t", tmpl)
		if err != nil {
			t.Fatalf("%s: %v", tmpl, err)
		}
		if _, err := Execute(tm, ctx); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want containing %q", tmpl, err, want)
		}
	}
	if _, err := Parse("bad", "{{ .x "); err == nil {
		t.Error("malformed template parsed")
	}
}
