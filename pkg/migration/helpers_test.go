package migration

import (
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"
)

// kv is data in a compact, comparable form: key → JSON text.
type kv map[string]string

// md is metadata in a compact form: data key → metadata name → JSON text.
type md map[string]map[string]string

func toData(d kv, m md) *Data {
	out := &Data{Data: map[string]json.RawMessage{}, Metadata: map[string]map[string]json.RawMessage{}}
	for k, v := range d {
		out.Data[k] = json.RawMessage(v)
	}
	for k, names := range m {
		out.Metadata[k] = map[string]json.RawMessage{}
		for n, v := range names {
			out.Metadata[k][n] = json.RawMessage(v)
		}
	}
	return out
}

func fromData(d *Data) (kv, md) {
	outD, outM := kv{}, md{}
	for k, v := range d.Data {
		outD[k] = string(v)
	}
	for k, names := range d.Metadata {
		outM[k] = map[string]string{}
		for n, v := range names {
			outM[k][n] = string(v)
		}
	}
	return outD, outM
}

// base is a small storewolf-like section every helper case starts from.
func base() (kv, md) {
	return kv{
			"settings.motd":                                `"Welcome to Gantry!"`,
			"settings.ntp.time-servers":                    `["2.pool.ntp.org"]`,
			"settings.ntp.options":                         `["iburst"]`,
			"settings.kernel.sysctl.\"vm.max_map_count\"":  `"262144"`,
			"settings.kernel.sysctl.\"vm.swappiness\"":     `"10"`,
			"settings.metrics.send-metrics":                `false`,
			"settings.metricsx":                            `"x"`,
			"configuration-files.motd.template-path":       `"/usr/share/templates/motd"`,
			"configuration-files.motd.path":                `"/etc/motd"`,
			"configuration-files.\"a.b\".template-path":    `"/usr/share/templates/a"`,
			"services.motd.configuration-files":            `["motd"]`,
			"settings.updates.version-lock":                `"latest"`,
			"settings.network.hostname":                    `"node-1"`,
			"settings.kernel.modules.sctp.allowed":         `false`,
			"settings.container-registry.mirrors":          `[{"registry":"docker.io","endpoint":["https://m"]}]`,
			"settings.host-containers.admin.enabled":       `true`,
			"settings.host-containers.admin.source":        `"admin:v1"`,
			"settings.host-containers.control.enabled":     `true`,
			"settings.host-containers.control.superpowers": `false`,
		}, md{
			"settings.motd":             {"affected-services": `["motd"]`},
			"settings.ntp":              {"affected-services": `["ntp"]`},
			"settings.ntp.options":      {"affected-services": `["ntp","chronyd"]`},
			"settings.kernel.sysctl":    {"affected-services": `["sysctl"]`},
			"settings.metrics":          {"affected-services": `["metrics"]`, "setting-generator": `"gen-metrics"`},
			"settings.network.hostname": {"affected-services": `["hostname"]`, "setting-generator": `"netdog generate-hostname"`},
		}
}

// edit returns a copy of the base with changes applied: a value of "" deletes.
func edit(d kv, changes kv) kv {
	out := maps.Clone(d)
	for k, v := range changes {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func editMD(m md, changes md) md {
	out := md{}
	for k, v := range m {
		out[k] = maps.Clone(v)
	}
	for k, names := range changes {
		if names == nil {
			delete(out, k)
			continue
		}
		if out[k] == nil {
			out[k] = map[string]string{}
		}
		for n, v := range names {
			if v == "" {
				delete(out[k], n)
			} else {
				out[k][n] = v
			}
		}
		if len(out[k]) == 0 {
			delete(out, k)
		}
	}
	return out
}

// TestHelpers runs every helper forward on a base section, checks the result,
// runs it backward on that result, and checks that.
func TestHelpers(t *testing.T) {
	d0, m0 := base()
	tests := []struct {
		name          string
		m             Migration
		in            kv // nil: the base
		inMD          md // nil: the base
		fwd, back     kv
		fwdMD, backMD md
	}{
		{
			name: "AddSettings forward keeps, backward removes key, children and their metadata",
			m:    AddSettings{"settings.ntp.options", "settings.metrics", "settings.absent"},
			fwd:  d0, fwdMD: m0,
			back:   edit(d0, kv{"settings.ntp.options": "", "settings.metrics.send-metrics": ""}),
			backMD: editMD(m0, md{"settings.ntp.options": nil, "settings.metrics": nil}),
		},
		{
			name: "AddSettings matches whole segments only",
			m:    AddSettings{"settings.metrics"},
			fwd:  d0, fwdMD: m0,
			back:   edit(d0, kv{"settings.metrics.send-metrics": ""}), // settings.metricsx stays
			backMD: editMD(m0, md{"settings.metrics": nil}),
		},
		{
			name: "AddSettings with a quoted segment",
			m:    AddSettings{`settings.kernel.sysctl."vm.max_map_count"`},
			fwd:  d0, fwdMD: m0,
			back:   edit(d0, kv{`settings.kernel.sysctl."vm.max_map_count"`: ""}),
			backMD: m0,
		},
		{
			name: "RemoveSettings forward removes, backward keeps",
			m:    RemoveSettings{"settings.host-containers.control", "settings.nope"},
			fwd: edit(d0, kv{"settings.host-containers.control.enabled": "",
				"settings.host-containers.control.superpowers": ""}),
			fwdMD: m0,
			back: edit(d0, kv{"settings.host-containers.control.enabled": "",
				"settings.host-containers.control.superpowers": ""}),
			backMD: m0,
		},
		{
			name:  "ReplaceString old to new and back",
			m:     ReplaceString{Setting: "settings.updates.version-lock", Old: "latest", New: "v1.1.0"},
			fwd:   edit(d0, kv{"settings.updates.version-lock": `"v1.1.0"`}),
			fwdMD: m0, back: d0, backMD: m0,
		},
		{
			name: "ReplaceString leaves a value the user changed",
			m:    ReplaceString{Setting: "settings.motd", Old: "Welcome!", New: "Hello"},
			fwd:  d0, fwdMD: m0, back: d0, backMD: m0,
		},
		{
			name: "ReplaceString leaves a non-string value",
			m:    ReplaceString{Setting: "settings.metrics.send-metrics", Old: "false", New: "true"},
			fwd:  d0, fwdMD: m0, back: d0, backMD: m0,
		},
		{
			name: "ReplaceString on a missing key does nothing",
			m:    ReplaceString{Setting: "settings.absent", Old: "a", New: "b"},
			in:   kv{}, inMD: md{},
			fwd: kv{}, fwdMD: md{}, back: kv{}, backMD: md{},
		},
		{
			name:  "ReplaceList exact list old to new and back",
			m:     ReplaceList{Setting: "settings.ntp.options", Old: []string{"iburst"}, New: []string{"iburst", "minpoll 4"}},
			fwd:   edit(d0, kv{"settings.ntp.options": `["iburst","minpoll 4"]`}),
			fwdMD: m0, back: edit(d0, kv{"settings.ntp.options": `["iburst"]`}), backMD: m0,
		},
		{
			name:  "ReplaceList compares as JSON, ignoring spacing",
			m:     ReplaceList{Setting: "settings.ntp.options", Old: []string{"iburst"}, New: nil},
			in:    edit(d0, kv{"settings.ntp.options": `[ "iburst" ]`}),
			fwd:   edit(d0, kv{"settings.ntp.options": `[]`}),
			fwdMD: m0, back: edit(d0, kv{"settings.ntp.options": `["iburst"]`}), backMD: m0,
		},
		{
			name: "ReplaceList leaves a list in another order",
			m:    ReplaceList{Setting: "settings.ntp.time-servers", Old: []string{"b", "2.pool.ntp.org"}, New: []string{"x"}},
			fwd:  d0, fwdMD: m0, back: d0, backMD: m0,
		},
		{
			name:  "ReplaceTemplate",
			m:     ReplaceTemplate{File: "motd", Old: "/usr/share/templates/motd", New: "/usr/share/templates/motd-v2"},
			fwd:   edit(d0, kv{"configuration-files.motd.template-path": `"/usr/share/templates/motd-v2"`}),
			fwdMD: m0, back: d0, backMD: m0,
		},
		{
			name:  "ReplaceTemplate quotes a file name with a dot",
			m:     ReplaceTemplate{File: "a.b", Old: "/usr/share/templates/a", New: "/usr/share/templates/b"},
			fwd:   edit(d0, kv{`configuration-files."a.b".template-path`: `"/usr/share/templates/b"`}),
			fwdMD: m0, back: d0, backMD: m0,
		},
		{
			name: "ReplaceTemplate leaves a customized path",
			m:    ReplaceTemplate{File: "motd", Old: "/usr/share/templates/other", New: "/x"},
			fwd:  d0, fwdMD: m0, back: d0, backMD: m0,
		},
		{
			name: "AddMetadata forward keeps, backward removes",
			m: AddMetadata{{Setting: "settings.metrics", Metadata: []string{"setting-generator"}},
				{Setting: "settings.motd", Metadata: []string{"affected-services", "absent"}}},
			fwd: d0, fwdMD: m0, back: d0,
			backMD: editMD(m0, md{"settings.metrics": {"setting-generator": ""}, "settings.motd": {"affected-services": ""}}),
		},
		{
			name:   "RemoveMetadata forward removes, backward keeps",
			m:      RemoveMetadata{{Setting: "settings.network.hostname", Metadata: []string{"setting-generator"}}},
			fwd:    d0,
			fwdMD:  editMD(m0, md{"settings.network.hostname": {"setting-generator": ""}}),
			back:   d0,
			backMD: editMD(m0, md{"settings.network.hostname": {"setting-generator": ""}}),
		},
		{
			name: "ReplaceMetadata",
			m: ReplaceMetadata{Setting: "settings.ntp", Metadata: "affected-services",
				Old: json.RawMessage(`["ntp"]`), New: json.RawMessage(`["ntp", "chronyd"]`)},
			fwd:   d0,
			fwdMD: editMD(m0, md{"settings.ntp": {"affected-services": `["ntp","chronyd"]`}}),
			back:  d0, backMD: m0,
		},
		{
			name: "ReplaceMetadata leaves another value",
			m: ReplaceMetadata{Setting: "settings.ntp", Metadata: "affected-services",
				Old: json.RawMessage(`["other"]`), New: json.RawMessage(`["x"]`)},
			fwd: d0, fwdMD: m0, back: d0, backMD: m0,
		},
		{
			name: "AddPrefixes is a plain string prefix",
			m:    AddPrefixes{"settings.metrics"},
			fwd:  d0, fwdMD: m0,
			back:   edit(d0, kv{"settings.metrics.send-metrics": "", "settings.metricsx": ""}),
			backMD: editMD(m0, md{"settings.metrics": nil}),
		},
		{
			name: "RemovePrefixes forward removes, backward keeps",
			m:    RemovePrefixes{"settings.host-containers.", "settings.network"},
			fwd: edit(d0, kv{"settings.host-containers.admin.enabled": "", "settings.host-containers.admin.source": "",
				"settings.host-containers.control.enabled": "", "settings.host-containers.control.superpowers": "",
				"settings.network.hostname": ""}),
			fwdMD: editMD(m0, md{"settings.network.hostname": nil}),
			back: edit(d0, kv{"settings.host-containers.admin.enabled": "", "settings.host-containers.admin.source": "",
				"settings.host-containers.control.enabled": "", "settings.host-containers.control.superpowers": "",
				"settings.network.hostname": ""}),
			backMD: editMD(m0, md{"settings.network.hostname": nil}),
		},
		{
			name: "NoOp",
			m:    NoOp{},
			fwd:  d0, fwdMD: m0, back: d0, backMD: m0,
		},
		{
			name: "Sequence runs forward in order and backward in reverse",
			m: Sequence{
				ReplaceString{Setting: "settings.motd", Old: "Welcome to Gantry!", New: "step1"},
				ReplaceString{Setting: "settings.motd", Old: "step1", New: "step2"},
			},
			fwd:   edit(d0, kv{"settings.motd": `"step2"`}),
			fwdMD: m0, back: d0, backMD: m0,
		},
		{
			name: "helpers on an empty pending section",
			m: Sequence{AddSettings{"settings.a"}, RemoveSettings{"settings.b"}, ReplaceString{Setting: "settings.c", Old: "x", New: "y"},
				ReplaceList{Setting: "settings.d"}, ReplaceTemplate{File: "f", Old: "a", New: "b"},
				AddMetadata{{Setting: "settings.e", Metadata: []string{"m"}}}, RemoveMetadata{{Setting: "settings.e", Metadata: []string{"m"}}},
				ReplaceMetadata{Setting: "settings.e", Metadata: "m", Old: json.RawMessage(`1`), New: json.RawMessage(`2`)},
				AddPrefixes{"settings.f"}, RemovePrefixes{"settings.g"}, NoOp{}},
			in: kv{}, inMD: md{},
			fwd: kv{}, fwdMD: md{}, back: kv{}, backMD: md{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, inMD := tt.in, tt.inMD
			if in == nil {
				in = d0
			}
			if inMD == nil {
				inMD = m0
			}
			d := toData(in, inMD)
			if err := tt.m.Forward(d); err != nil {
				t.Fatalf("Forward: %v", err)
			}
			gotD, gotM := fromData(d)
			if !reflect.DeepEqual(gotD, tt.fwd) {
				t.Errorf("Forward data:\n%s", kvDiff(tt.fwd, gotD))
			}
			if !reflect.DeepEqual(gotM, tt.fwdMD) {
				t.Errorf("Forward metadata:\n got %v\nwant %v", gotM, tt.fwdMD)
			}
			if err := tt.m.Backward(d); err != nil {
				t.Fatalf("Backward: %v", err)
			}
			gotD, gotM = fromData(d)
			if !reflect.DeepEqual(gotD, tt.back) {
				t.Errorf("Backward data:\n%s", kvDiff(tt.back, gotD))
			}
			if !reflect.DeepEqual(gotM, tt.backMD) {
				t.Errorf("Backward metadata:\n got %v\nwant %v", gotM, tt.backMD)
			}
		})
	}
}

// TestHelperErrors checks that a malformed key fails both directions with
// the helper's name.
func TestHelperErrors(t *testing.T) {
	tests := []struct {
		m    Migration
		want string
	}{
		{AddSettings{"settings..x"}, "AddSettings"},
		{RemoveSettings{"settings.x y"}, "RemoveSettings"},
		{ReplaceString{Setting: `settings."x`}, "ReplaceString"},
		{ReplaceList{Setting: ""}, "ReplaceList"},
		{ReplaceTemplate{File: "a b"}, "ReplaceTemplate"},
		{AddMetadata{{Setting: "settings.x", Metadata: []string{"a.b"}}}, "AddMetadata"},
		{RemoveMetadata{{Setting: "settings.x.", Metadata: []string{"m"}}}, "RemoveMetadata"},
		{ReplaceMetadata{Setting: "settings.x", Metadata: "m", Old: json.RawMessage(`{`), New: json.RawMessage(`1`)}, "ReplaceMetadata"},
		{AddPrefixes{""}, "AddPrefixes"},
		{RemovePrefixes{""}, "RemovePrefixes"},
		{Sequence{NoOp{}, AddSettings{".x"}}, "step 2"},
	}
	for _, tt := range tests {
		for _, dir := range []Direction{Forward, Backward} {
			d := toData(base())
			err := dir.Apply(tt.m, d)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%T %s: error %v, want one naming %q", tt.m, dir, err, tt.want)
			}
		}
	}
}

func TestDataString(t *testing.T) {
	d := toData(kv{"os.variant_id": `"metal-dev"`, "settings.n": `1`}, nil)
	tests := []struct {
		key    string
		want   string
		wantOK bool
	}{
		{"os.variant_id", "metal-dev", true},
		{"settings.n", "", false},
		{"settings.absent", "", false},
	}
	for _, tt := range tests {
		got, ok := d.String(tt.key)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("String(%q) = %q, %v; want %q, %v", tt.key, got, ok, tt.want, tt.wantOK)
		}
	}
}

func kvDiff(want, got kv) string {
	var b strings.Builder
	for k, v := range want {
		if g, ok := got[k]; !ok {
			b.WriteString("  missing " + k + " = " + v + "\n")
		} else if g != v {
			b.WriteString("  " + k + " = " + g + ", want " + v + "\n")
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			b.WriteString("  extra " + k + " = " + v + "\n")
		}
	}
	return b.String()
}
