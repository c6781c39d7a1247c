package userdata

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"github.com/gantry-os/gantry/internal/testsupport"
	"os"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that what it accepts is valid
// JSON, that every key of the settings it returns has a line of its own
// within the input, and that validation errors always carry a line.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"[settings]\nmotd = \"hi\"\n",
		"[settings.kernel.sysctl]\n\"vm.max_map_count\" = \"262144\"\n'a.b' = \"1\"\n",
		"settings = { motd = \"x\", network.hostname = \"n\" }\n",
		"[settings.ntp]\ntime-servers = [\n  \"a\", # c\n  \"b\",\n]\n",
		"[[settings.t]]\na = 1\n[[settings.t]]\n[settings.t.sub]\nb = [1, [2, {c = 3}]]\n",
		"[settings]\ns = \"\"\"\nmulti \\\n  \"quoted\"\"\"\"\nl = '''x\n'''\n",
		"[settings]\nd = 1979-05-27 07:32:00Z\nf = 1e3\ni = 0x1f\nn = nan\n",
		"[settings]\n\"\\u0041\\n\" = 1\n",
		"[settings.updates]\nseed = \"x\"\n",
		"[settings\nmotd = \n",
		"\xef\xbb\xbf[settings]\nx=1\r\ny=2\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte("[settings]\nmotd = \"zipped\"\n"))
	zw.Close()
	f.Add(b.Bytes())
	if ex, err := os.ReadFile(testsupport.RepoPath(f, "examples/user-data.toml")); err == nil {
		f.Add(ex)
	}
	m := metalDev(f)

	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Parse("fuzz.toml", data)
		if err != nil {
			var el ErrorList
			if !errors.As(err, &el) || len(el) == 0 {
				t.Fatalf("Parse error %v (%T) is not a non-empty ErrorList", err, err)
			}
			return
		}
		if doc.Settings == nil {
			return
		}
		enc, err := json.Marshal(doc.Settings)
		if err != nil {
			t.Fatalf("settings do not encode as JSON: %v", err)
		}
		if !json.Valid(enc) {
			t.Fatalf("invalid JSON %s", enc)
		}
		text := data
		if bytes.HasPrefix(text, gzipMagic) {
			return // line checks need the plain text
		}
		lines := bytes.Count(text, []byte("\n")) + 1
		walk([]string{"settings"}, doc.Settings, func(path []string) {
			key := keyName(path)
			l, ok := doc.lines[key]
			if !ok {
				t.Fatalf("key %s has no line of its own (lines: %v)", key, doc.lines)
			}
			if l < 1 || l > lines {
				t.Fatalf("key %s on line %d of %d", key, l, lines)
			}
		})
		if err := doc.Validate(m); err != nil {
			var el ErrorList
			if !errors.As(err, &el) {
				t.Fatalf("Validate error %v (%T) is not an ErrorList", err, err)
			}
			for _, e := range el {
				if e.Line < 1 || e.Source != "fuzz.toml" || !strings.HasPrefix(e.Key, "settings") {
					t.Fatalf("validation error without a place: %#v", e)
				}
			}
		}
	})
}

func walk(path []string, v any, visit func([]string)) {
	visit(path)
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			walk(appendPath(path, k), e, visit)
		}
	case []any:
		for i, e := range t {
			walk(appendPath(path, index(i)), e, visit)
		}
	}
}
