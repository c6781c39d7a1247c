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

	"github.com/gantry-os/gantry/pkg/model"
)

func gz(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    string // JSON of Settings; "null" for none
		wantErr string
	}{
		{name: "empty", in: nil, want: "null"},
		{name: "blank", in: []byte("  \n# only a comment\n"), want: "null"},
		{name: "no settings table", in: []byte("[other]\nx = 1\n"), want: "null"},
		{name: "other tables ignored", in: []byte("[other]\nx = 1\n[settings]\nmotd = \"hi\"\n"), want: `{"motd":"hi"}`},
		{name: "empty settings", in: []byte("[settings]\n"), want: `{}`},
		{name: "kubernetes example", in: []byte("[settings.kubernetes]\ncluster-name = \"x\"\n"), want: `{"kubernetes":{"cluster-name":"x"}}`},
		{name: "types", in: []byte("[settings]\ni = 42\nneg = -7\nf = 1.5\nwhole = 3.0\nexp = 1e21\nb = true\nl = [1, \"a\"]\n"),
			want: `{"b":true,"exp":1e+21,"f":1.5,"i":42,"l":[1,"a"],"neg":-7,"whole":3.0}`},
		{name: "quoted dotted key", in: []byte("[settings.kernel.sysctl]\n\"vm.max_map_count\" = \"262144\"\n"), want: `{"kernel":{"sysctl":{"vm.max_map_count":"262144"}}}`},
		{name: "inline and dotted", in: []byte("settings = { network.hostname = \"n1\", motd = 'x' }\n"), want: `{"motd":"x","network":{"hostname":"n1"}}`},
		{name: "array of tables", in: []byte("[[settings.l]]\na = 1\n[[settings.l]]\na = 2\n"), want: `{"l":[{"a":1},{"a":2}]}`},
		{name: "dates become strings", in: []byte("[settings]\nd = 2024-01-02\nt = 07:08:09\nldt = 2024-01-02T03:04:05\nodt = 2024-01-02T03:04:05Z\n"),
			want: `{"d":"2024-01-02","ldt":"2024-01-02T03:04:05","odt":"2024-01-02T03:04:05Z","t":"07:08:09"}`},
		{name: "gzip", in: gz(t, "[settings]\nmotd = \"zipped\"\n"), want: `{"motd":"zipped"}`},
		{name: "gzip empty", in: gz(t, ""), want: "null"},
		{name: "bom", in: []byte("\xef\xbb\xbf[settings]\nmotd = \"bom\"\n"), want: `{"motd":"bom"}`},

		{name: "syntax error", in: []byte("[settings]\nmotd = \"a\"\nseed = \n"), wantErr: "ud.toml:3: invalid TOML: "},
		{name: "duplicate key", in: []byte("[settings]\nmotd = \"a\"\nmotd = \"b\"\n"), wantErr: "ud.toml:3: invalid TOML: "},
		{name: "unterminated string", in: []byte("[settings]\n\nmotd = \"a\n"), wantErr: "ud.toml:3: invalid TOML: "},
		{name: "settings not a table", in: []byte("# x\nsettings = 5\n"), wantErr: "ud.toml:2: settings: expected a table, got an integer"},
		{name: "settings array of tables", in: []byte("[[settings]]\nmotd = \"x\"\n"), wantErr: "ud.toml:1: settings: expected a table, got an array of tables"},
		{name: "nan", in: []byte("[settings]\nmotd = \"ok\"\n\nx = nan\n"), wantErr: "ud.toml:4: settings.x: NaN cannot be a setting's value"},
		{name: "inf in list", in: []byte("[settings]\nl = [\n  1.0,\n  inf,\n]\n"), wantErr: "ud.toml:4: settings.l[1]: +Inf cannot be"},
		{name: "not gzip", in: []byte{0x1f, 0x8b, 0, 0}, wantErr: "ud.toml: user data starts like gzip but is not"},
		{name: "truncated gzip", in: gz(t, strings.Repeat("[settings]\n", 10))[:20], wantErr: "ud.toml: decompress gzip user data"},
		{name: "too large", in: bytes.Repeat([]byte("#"), MaxSize+1), wantErr: "ud.toml: user data is 1048577 bytes; the limit is 1048576"},
		{name: "gzip bomb", in: gz(t, strings.Repeat(" ", 4*MaxSize)), wantErr: "ud.toml: decompressed user data is larger than the limit of 1048576 bytes"},
		{name: "too deep", in: []byte("[settings]\nx = " + strings.Repeat("[", 70) + strings.Repeat("]", 70) + "\n"), wantErr: "ud.toml:2: settings.x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse("ud.toml", tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want it to contain %q", err, tt.wantErr)
				}
				var el ErrorList
				if !errors.As(err, &el) || len(el) == 0 || el[0].Source != "ud.toml" {
					t.Fatalf("error %v (%T) is not an ErrorList with its source", err, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := jsonOf(t, doc.Settings); got != tt.want {
				t.Fatalf("settings = %s, want %s", got, tt.want)
			}
			if doc.Source != "ud.toml" {
				t.Fatalf("source = %q", doc.Source)
			}
		})
	}
}

func TestLine(t *testing.T) {
	src := `# Gantry user data
[settings]
motd = "hi"          # line 3

[settings.kernel.sysctl]
"vm.max_map_count" = "1"
'net.ipv4.ip_forward' = "1"

[settings.ntp]
time-servers = [
  "a.example",   # [0], line 11
  # a comment, then [1]
  "b.example",
]
[settings.host-containers.admin]
source = """
line one
line two \
"""
enabled = true                # line 20
user-data = { a = 1, b = [
  2, 3] }                     # b[1] on line 22
[[settings.tbl]]
x = 1                         # line 24
[[settings.tbl]]
x = "a ] } # not a comment"   # line 26
[settings.tbl.sub]            # belongs to tbl[1], line 27
y = 2
[settings."dotted.name"]
"a\u002eb" = 1                # line 30, key "a.b"
`
	doc, err := Parse("ud.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  string
		want int
	}{
		{"settings", 2},
		{"settings.motd", 3},
		{"settings.kernel", 5},
		{"settings.kernel.sysctl", 5},
		{`settings.kernel.sysctl."vm.max_map_count"`, 6},
		{`settings.kernel.sysctl."net.ipv4.ip_forward"`, 7},
		{`settings.kernel.sysctl."vm.other"`, 5}, // not written: its table
		{"settings.ntp.time-servers", 10},
		{"settings.ntp.time-servers[0]", 11},
		{"settings.ntp.time-servers[1]", 13},
		{"settings.ntp.time-servers[7]", 10},
		{"settings.host-containers.admin.source", 16},
		{"settings.host-containers.admin.enabled", 20},
		{"settings.host-containers.admin.user-data", 21},
		{"settings.host-containers.admin.user-data.b[1]", 22},
		{"settings.tbl[0].x", 24},
		{"settings.tbl[1].x", 26},
		{"settings.tbl[1].sub.y", 28},
		{"settings.tbl[1].sub", 27},
		{`settings."dotted.name"."a.b"`, 30},
		{"settings.nowhere.deep", 2},
		{"other", 0},
	}
	for _, tt := range tests {
		if got := doc.Line(tt.key); got != tt.want {
			t.Errorf("Line(%s) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

func metalDev(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.ForVariant("metal-dev")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestValidate(t *testing.T) {
	m := metalDev(t)
	tests := []struct {
		name string
		src  string
		want []string // the errors, in order; nil for valid
	}{
		{name: "valid", src: "[settings]\nmotd = \"hi\"\n[settings.updates]\nseed = 7\n"},
		{name: "no settings", src: "[x]\n"},
		{name: "ill-typed", src: "[settings]\nmotd = \"hi\"\n\n[settings.updates]\nseed = 7\nignore-waves = false\nseed2 = 1\n",
			want: []string{"user-data.toml:7: settings.updates.seed2: unknown setting (allowed here: "}},
		{name: "brief example", src: "# comment\n[settings]\nmotd = \"hi\"\n\n[settings.updates]\nignore-waves = true\nseed = \"x\"\n",
			want: []string{`user-data.toml:7: settings.updates.seed: expected an integer 0-2047, got the string "x"`}},
		{name: "unknown group", src: "[settings.nope]\nx = 1\n", want: []string{"user-data.toml:1: settings.nope: unknown settings group for variant metal-dev"}},
		{name: "list element", src: "[settings.ntp]\ntime-servers = [\n  \"ok.example\",\n  \"how are you\",\n]\n",
			want: []string{`user-data.toml:4: settings.ntp.time-servers[1]: "how are you" is not a URL`}},
		{name: "sorted by line", src: "[settings.updates]\nseed = \"z\"\n[settings]\nmotd = 3\n",
			want: []string{"user-data.toml:2: settings.updates.seed:", "user-data.toml:4: settings.motd: expected a string"}},
		{name: "float is not an integer", src: "[settings.updates]\nseed = 3.0\n", want: []string{"user-data.toml:2: settings.updates.seed:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse("user-data.toml", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			err = doc.Validate(m)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var el ErrorList
			if !errors.As(err, &el) {
				t.Fatalf("Validate error = %v (%T), want an ErrorList", err, err)
			}
			if len(el) != len(tt.want) {
				t.Fatalf("Validate = %v, want %d errors", err, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(el[i].Error(), w) {
					t.Errorf("error %d = %q, want prefix %q", i, el[i].Error(), w)
				}
			}
		})
	}
}

func TestMergeAndCheck(t *testing.T) {
	parse := func(name, src string) *Document {
		d, err := Parse(name, []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := parse("a.toml", "[settings]\nmotd = \"a\"\n[settings.ntp]\ntime-servers = [\"x.example\", \"y.example\"]\n[settings.kernel.sysctl]\n\"vm.a\" = \"1\"\n")
	b := parse("b.toml", "[settings.ntp]\ntime-servers = [\"z.example\"]\n[settings.kernel.sysctl]\n\"vm.b\" = \"2\"\n")
	none := parse("none.toml", "")
	c := parse("c.toml", "[settings]\nmotd = \"c\"\n")
	got := jsonOf(t, Merge(a, b, none, c))
	want := `{"kernel":{"sysctl":{"vm.a":"1","vm.b":"2"}},"motd":"c","ntp":{"time-servers":["z.example"]}}`
	if got != want {
		t.Fatalf("Merge = %s, want %s", got, want)
	}
	// Merge copies: the inputs are untouched.
	if s := jsonOf(t, a.Settings); !strings.Contains(s, `"vm.a":"1"}`) || strings.Contains(s, "vm.b") {
		t.Fatalf("Merge modified its input: %s", s)
	}
	if len(Merge()) != 0 {
		t.Fatal("Merge() is not empty")
	}

	m := metalDev(t)
	if err := Check(m, Merge(a, b, c), a, b, c); err != nil {
		t.Fatalf("Check: %v", err)
	}
	// An error is attributed to the last document that writes the key.
	bad1 := parse("first.toml", "[settings]\nmotd = 1\n")
	bad2 := parse("second.toml", "[settings]\n\nmotd = 2\n[settings.updates]\nseed = \"x\"\n")
	err := Check(m, Merge(bad1, bad2), bad1, bad2)
	if err == nil {
		t.Fatal("Check accepted bad settings")
	}
	wantErr := `second.toml:3: settings.motd: expected a string, got the number 2; second.toml:5: settings.updates.seed: expected an integer 0-2047, got the string "x"`
	if err.Error() != wantErr {
		t.Fatalf("Check = %v\nwant  %s", err, wantErr)
	}
	err = Check(m, Merge(bad2, bad1), bad2, bad1)
	wantErr = `second.toml:5: settings.updates.seed: expected an integer 0-2047, got the string "x"; first.toml:2: settings.motd: expected a string, got the number 1`
	if err == nil || err.Error() != wantErr {
		t.Fatalf("Check = %v\nwant  %s", err, wantErr)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{Source: "u.toml", Line: 7, Key: "settings.a", Reason: "bad"}, "u.toml:7: settings.a: bad"},
		{Error{Source: "u.toml", Reason: "too big"}, "u.toml: too big"},
		{Error{Line: 3, Reason: "invalid TOML"}, "line 3: invalid TOML"},
		{Error{Key: "settings.a", Reason: "bad"}, "settings.a: bad"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%#v.Error() = %q, want %q", tt.e, got, tt.want)
		}
	}
}

func TestExampleUserData(t *testing.T) {
	b, err := os.ReadFile(testsupport.RepoPath(t, "examples/user-data.toml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Parse("examples/user-data.toml", b)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(metalDev(t)); err != nil {
		t.Fatal(err)
	}
}

// TestDocsExample checks that the example in docs/user-data.md is valid.
func TestDocsExample(t *testing.T) {
	b, err := os.ReadFile(testsupport.RepoPath(t, "docs/user-data.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```toml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/user-data.md has no TOML example")
	}
	doc, err := Parse("docs/user-data.md", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if doc.Empty() {
		t.Fatal("the example has no settings")
	}
	if err := doc.Validate(metalDev(t)); err != nil {
		t.Fatal(err)
	}
}
