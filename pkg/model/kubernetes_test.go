package model

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// validateCase is one Validate call: wantErr is "" for a valid value, else a
// piece of text the error must contain (the reason).
type validateCase struct {
	v       Validator
	wantErr string
}

func runValidateCases(t *testing.T, cases []validateCase) {
	t.Helper()
	for _, tc := range cases {
		err := tc.v.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%T(%q).Validate() = %v, want nil", tc.v, tc.v, err)
		case tc.wantErr != "" && err == nil:
			t.Errorf("%T(%q).Validate() = nil, want an error containing %q", tc.v, tc.v, tc.wantErr)
		case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
			t.Errorf("%T(%q).Validate() = %q, want it to contain %q", tc.v, tc.v, err, tc.wantErr)
		}
	}
}

// checkJSONCase is one CheckJSON call on a JSON document.
type checkJSONCase struct {
	c       JSONChecker
	doc     string
	wantErr string
}

func runCheckJSONCases(t *testing.T, cases []checkJSONCase) {
	t.Helper()
	for _, tc := range cases {
		v, err := DecodeJSON([]byte(tc.doc))
		if err != nil {
			t.Fatalf("%s: %v", tc.doc, err)
		}
		err = tc.c.CheckJSON(v)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%T.CheckJSON(%s) = %v, want nil", tc.c, tc.doc, err)
		case tc.wantErr != "" && err == nil:
			t.Errorf("%T.CheckJSON(%s) = nil, want an error containing %q", tc.c, tc.doc, tc.wantErr)
		case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
			t.Errorf("%T.CheckJSON(%s) = %q, want it to contain %q", tc.c, tc.doc, err, tc.wantErr)
		}
	}
}

func validateDoc(t *testing.T, typ reflect.Type, jsonDoc string) ValidationError {
	t.Helper()
	v, err := DecodeJSON([]byte(jsonDoc))
	if err != nil {
		t.Fatal(err)
	}
	var c checker
	c.check([]string{"settings", "kubernetes"}, typ, v)
	return c.errs
}

// wantFieldErrors checks that errs holds exactly one error per key of want,
// each with a reason containing the wanted text.
func wantFieldErrors(t *testing.T, errs ValidationError, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, e := range errs {
		if _, dup := got[e.Key]; dup {
			t.Errorf("more than one error for %s: %v", e.Key, errs)
		}
		got[e.Key] = e.Reason
	}
	for key, reason := range want {
		r, ok := got[key]
		if !ok {
			t.Errorf("no error for %s; got %v", key, errs)
			continue
		}
		if !strings.Contains(r, reason) {
			t.Errorf("error for %s = %q, want it to contain %q", key, r, reason)
		}
	}
	for key, r := range got {
		if _, ok := want[key]; !ok {
			t.Errorf("unexpected error %s: %s", key, r)
		}
	}
}

func TestKubernetesNamesAndLabels(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	runValidateCases(t, []validateCase{
		{KubernetesName("howdy"), ""}, {KubernetesName("42"), ""}, {KubernetesName("18-eighteen."), ""},
		{KubernetesName(a(253)), ""},
		{KubernetesName(""), "1-253 characters"}, {KubernetesName("HOWDY"), "a-z, 0-9"},
		{KubernetesName("hi/there"), "a-z, 0-9"}, {KubernetesName(a(254)), "1-253 characters"},

		{KubernetesLabelKey("no-prefix"), ""}, {KubernetesLabelKey("have.a/prefix"), ""},
		{KubernetesLabelKey("more-chars_here.now"), ""}, {KubernetesLabelKey(a(63)), ""},
		{KubernetesLabelKey("node.kubernetes.io/lifecycle"), ""}, {KubernetesLabelKey("x"), ""},
		{KubernetesLabelKey(a(253) + "/name"), ""}, {KubernetesLabelKey("example.com/Upper_Case.9"), ""},
		{KubernetesLabelKey(".bad"), "starting and ending with a letter or digit"},
		{KubernetesLabelKey("bad."), "starting and ending with a letter or digit"},
		{KubernetesLabelKey(""), "1-63 characters"},
		{KubernetesLabelKey(a(64)), "1-63 characters"},
		{KubernetesLabelKey(a(254) + "/name"), "1-253 characters"},
		{KubernetesLabelKey("Example.com/x"), "lower-case DNS name"},
		{KubernetesLabelKey("-example.com/x"), "lower-case DNS name"},
		{KubernetesLabelKey("example..com/x"), "lower-case DNS name"},
		{KubernetesLabelKey("a/b/c"), "at most one '/'"},
		{KubernetesLabelKey("/name"), "prefix before '/' must be 1-253"},
		{KubernetesLabelKey("example.com/"), "1-63 characters"},
		{KubernetesLabelKey("has space"), "must be A-Z, a-z, 0-9"},

		{KubernetesLabelValue(""), ""}, {KubernetesLabelValue("more-chars_here.now"), ""},
		{KubernetesLabelValue(a(63)), ""}, {KubernetesLabelValue("Spot"), ""},
		{KubernetesLabelValue(".bad"), "starting and ending"}, {KubernetesLabelValue("bad."), "starting and ending"},
		{KubernetesLabelValue(a(64)), "1-63 characters"}, {KubernetesLabelValue("a/b"), "must be A-Z"},

		{KubernetesClusterName("more-chars_here-123"), ""}, {KubernetesClusterName("trailing-dash-"), ""},
		{KubernetesClusterName("under_score_"), ""}, {KubernetesClusterName(a(100)), ""},
		{KubernetesClusterName("Prod1"), ""},
		{KubernetesClusterName(""), "1-100 characters"}, {KubernetesClusterName(a(101)), "1-100 characters"},
		{KubernetesClusterName("bad."), "A-Z, a-z, 0-9, '-' and '_'"},
		{KubernetesClusterName("-bad"), "starting with a letter or digit"},
		{KubernetesClusterName("_bad"), "starting with a letter or digit"},
		{KubernetesClusterName("very bad"), "A-Z, a-z, 0-9, '-' and '_'"},

		{KubernetesTaintValue("value:NoSchedule"), ""}, {KubernetesTaintValue("value:PreferNoSchedule"), ""},
		{KubernetesTaintValue("value:NoExecute"), ""}, {KubernetesTaintValue(":NoSchedule"), ""},
		{KubernetesTaintValue("a:NoSchedule"), ""}, {KubernetesTaintValue("a-b.c_d:NoSchedule"), ""},
		{KubernetesTaintValue("value"), "[value]:effect"},
		{KubernetesTaintValue(""), "[value]:effect"},
		{KubernetesTaintValue("value:"), "taint effect \"\" must be one of: NoSchedule, PreferNoSchedule, NoExecute"},
		{KubernetesTaintValue(":"), "taint effect"},
		{KubernetesTaintValue("value:Sometimes"), "\"Sometimes\" must be one of"},
		{KubernetesTaintValue("-a:NoSchedule"), "taint value \"-a\""},
		{KubernetesTaintValue("a-:NoSchedule"), "starting and ending"},
		{KubernetesTaintValue(a(64) + ":NoSchedule"), "1-63 characters"},
		{KubernetesTaintValue("a:b:NoSchedule"), "taint value \"a:b\""},
	})
}

func TestKubernetesEnums(t *testing.T) {
	runValidateCases(t, []validateCase{
		{KubernetesAuthenticationMode("aws"), ""}, {KubernetesAuthenticationMode("tls"), ""},
		{KubernetesAuthenticationMode(""), "must be one of: aws, tls"},
		{KubernetesAuthenticationMode("anonymous"), `"anonymous" must be one of`},

		{KubernetesCloudProvider("aws"), ""}, {KubernetesCloudProvider("external"), ""},
		{KubernetesCloudProvider(""), ""}, {KubernetesCloudProvider(`""`), ""},
		{KubernetesCloudProvider("internal"), `"internal" must be one of: aws, external`},

		{KubernetesHostnameOverrideSource("private-dns-name"), ""}, {KubernetesHostnameOverrideSource("instance-id"), ""},
		{KubernetesHostnameOverrideSource(""), "must be one of: private-dns-name, instance-id"},
		{KubernetesHostnameOverrideSource("invalid"), "must be one of"},

		{KubernetesEvictionKey("memory.available"), ""}, {KubernetesEvictionKey("nodefs.available"), ""},
		{KubernetesEvictionKey("nodefs.inodesFree"), ""}, {KubernetesEvictionKey("imagefs.available"), ""},
		{KubernetesEvictionKey("imagefs.inodesFree"), ""}, {KubernetesEvictionKey("pid.available"), ""},
		{KubernetesEvictionKey(""), "must be one of: memory.available"},
		{KubernetesEvictionKey("storage.available"), `"storage.available" must be one of`},
		{KubernetesEvictionKey("memory.Available"), "must be one of"},

		{KubernetesReservedResourceKey("cpu"), ""}, {KubernetesReservedResourceKey("memory"), ""},
		{KubernetesReservedResourceKey("ephemeral-storage"), ""},
		{KubernetesReservedResourceKey(""), "must be one of: cpu, memory, ephemeral-storage"},
		{KubernetesReservedResourceKey("cpa"), "must be one of"}, {KubernetesReservedResourceKey("pid"), "must be one of"},

		{CPUManagerPolicy("none"), ""}, {CPUManagerPolicy("static"), ""},
		{CPUManagerPolicy(""), "must be one of: none, static"}, {CPUManagerPolicy("Static"), "must be one of"},
		{CPUManagerPolicy("dynamic"), `"dynamic" must be one of`},

		{TopologyManagerScope("container"), ""}, {TopologyManagerScope("pod"), ""},
		{TopologyManagerScope(""), "must be one of: container, pod"}, {TopologyManagerScope("node"), "must be one of"},

		{TopologyManagerPolicy("none"), ""}, {TopologyManagerPolicy("restricted"), ""},
		{TopologyManagerPolicy("best-effort"), ""}, {TopologyManagerPolicy("single-numa-node"), ""},
		{TopologyManagerPolicy(""), "must be one of: none, restricted, best-effort, single-numa-node"},
		{TopologyManagerPolicy("best_effort"), "must be one of"},

		{KubernetesMemoryManagerPolicy("None"), ""}, {KubernetesMemoryManagerPolicy("Static"), ""},
		{KubernetesMemoryManagerPolicy(""), "must be one of: None, Static"},
		{KubernetesMemoryManagerPolicy("static"), "must be one of"},
		{KubernetesMemoryManagerPolicy("dynamic"), "must be one of"},

		{KubernetesEnvVarName("AWS_PROFILE"), ""}, {KubernetesEnvVarName("_x"), ""}, {KubernetesEnvVarName("a1"), ""},
		{KubernetesEnvVarName(""), "must be 1-255 characters"}, {KubernetesEnvVarName("1A"), "not starting with a digit"},
		{KubernetesEnvVarName("A-B"), "A-Z, a-z, 0-9 and '_'"}, {KubernetesEnvVarName(strings.Repeat("A", 256)), "1-255"},
	})
}

func TestKubernetesBootstrapToken(t *testing.T) {
	runValidateCases(t, []validateCase{
		{KubernetesBootstrapToken("abcdef.0123456789abcdef"), ""},
		{KubernetesBootstrapToken("07401b.f395accd246ae52d"), ""},
		{KubernetesBootstrapToken(""), "6 and then 16 characters of a-z and 0-9"},
		{KubernetesBootstrapToken("ABCDEF.0123456789ABCDEF"), "a-z and 0-9"},
		{KubernetesBootstrapToken("secret"), "joined by '.'"},
		{KubernetesBootstrapToken(strings.Repeat("a", 23)), "joined by '.'"},
		{KubernetesBootstrapToken("abcdef.0123456789abcde"), "6 and then 16"},
	})
	// The token is a secret: the error must not repeat it.
	const secret = "zzzzzz.yyyyyyyyyyyyyyyyX"
	if err := KubernetesBootstrapToken(secret).Validate(); err == nil || strings.Contains(err.Error(), "yyyy") {
		t.Errorf("Validate() = %v, want an error that does not repeat the token", err)
	}
}

func TestKubernetesQuantitiesAndThresholds(t *testing.T) {
	runValidateCases(t, []validateCase{
		{KubernetesQuantityValue("129e6"), ""}, {KubernetesQuantityValue("10Mi"), ""},
		{KubernetesQuantityValue("1024M"), ""}, {KubernetesQuantityValue("1Gi"), ""},
		{KubernetesQuantityValue("120Ki"), ""}, {KubernetesQuantityValue("1Ti"), ""},
		{KubernetesQuantityValue("1000n"), ""}, {KubernetesQuantityValue("100m"), ""},
		{KubernetesQuantityValue("0"), ""}, {KubernetesQuantityValue("1.5Gi"), ""},
		{KubernetesQuantityValue(".5"), ""}, {KubernetesQuantityValue("100k"), ""},
		{KubernetesQuantityValue("2E"), ""}, {KubernetesQuantityValue("1e-3"), ""},
		{KubernetesQuantityValue(""), "not a Kubernetes quantity"},
		{KubernetesQuantityValue("12%"), "not a Kubernetes quantity"},
		{KubernetesQuantityValue("anything%"), "not a Kubernetes quantity"},
		{KubernetesQuantityValue("12ki"), "not a Kubernetes quantity"},
		{KubernetesQuantityValue("100e23m"), "not a Kubernetes quantity"},
		{KubernetesQuantityValue("1100KTi"), "not a Kubernetes quantity"},
		{KubernetesQuantityValue("100Kiii"), "not a Kubernetes quantity"},
		{KubernetesQuantityValue("1000i"), "not a Kubernetes quantity"},
		{KubernetesQuantityValue("100K"), "not a Kubernetes quantity"},
		{KubernetesQuantityValue("1.2.3"), "not a Kubernetes quantity"},
		{KubernetesQuantityValue("Gi"), "not a Kubernetes quantity"},
		{KubernetesQuantityValue("1 Gi"), "not a Kubernetes quantity"},
		{KubernetesQuantityValue("-1Gi"), "must not be negative"},

		{KubernetesThresholdValue("10%"), ""}, {KubernetesThresholdValue("7.5%"), ""},
		{KubernetesThresholdValue("0%"), ""}, {KubernetesThresholdValue("99.9%"), ""},
		{KubernetesThresholdValue("129e6"), ""}, {KubernetesThresholdValue("100Mi"), ""},
		{KubernetesThresholdValue("1Gi"), ""}, {KubernetesThresholdValue("1000n"), ""},
		{KubernetesThresholdValue(""), "not a Kubernetes quantity"},
		{KubernetesThresholdValue("anything%"), "not a percentage"},
		{KubernetesThresholdValue("%"), "not a percentage"},
		{KubernetesThresholdValue("-5%"), "not a percentage"},
		{KubernetesThresholdValue("100%"), "below 100%"},
		{KubernetesThresholdValue("150%"), "below 100%"},
		{KubernetesThresholdValue("12ki"), "or a percentage such as 10%"},
		{KubernetesThresholdValue("-1Mi"), "must not be negative"},
	})
}

func TestKubernetesDurations(t *testing.T) {
	runValidateCases(t, []validateCase{
		{KubernetesDurationValue("9ms"), ""}, {KubernetesDurationValue("99s"), ""},
		{KubernetesDurationValue("20m"), ""}, {KubernetesDurationValue("1h"), ""},
		{KubernetesDurationValue("12h"), ""}, {KubernetesDurationValue("1h2m3s10ms"), ""},
		{KubernetesDurationValue("4m5s10ms"), ""}, {KubernetesDurationValue("2h3s10ms"), ""},
		{KubernetesDurationValue("1.5h3.5m"), ""}, {KubernetesDurationValue("0s"), ""},
		{KubernetesDurationValue(""), "not a duration"},
		{KubernetesDurationValue("100"), "not a duration"},
		{KubernetesDurationValue("...3ms"), "not a duration"},
		{KubernetesDurationValue("1..5s"), "not a duration"},
		{KubernetesDurationValue("1.s"), "not a duration"},
		{KubernetesDurationValue("ten second"), "not a duration"},
		{KubernetesDurationValue("1 s"), "not a duration"},
		{KubernetesDurationValue("-1s"), "not a duration"},
		{KubernetesDurationValue("9ns"), "units: h, m, s, ms"},
		{KubernetesDurationValue("1d"), "units: h, m, s, ms"},
		{KubernetesDurationValue("1m2h"), "largest to smallest"},
		{KubernetesDurationValue("1s1s"), "each at most once"},
		{KubernetesDurationValue("3000000h"), "too long"},
	})
}

func TestKubernetesClusterDNSIPAndIntegerPercent(t *testing.T) {
	runCheckJSONCases(t, []checkJSONCase{
		{KubernetesClusterDNSIP{}, `"10.100.0.10"`, ""},
		{KubernetesClusterDNSIP{}, `"fd00::a"`, ""},
		{KubernetesClusterDNSIP{}, `["10.100.0.10", "fd00::a"]`, ""},
		{KubernetesClusterDNSIP{}, `[]`, ""},
		{KubernetesClusterDNSIP{}, `"x"`, `"x" is not an IP address`},
		{KubernetesClusterDNSIP{}, `["10.0.0.1", "nope"]`, `entry 1: "nope" is not an IP address`},
		{KubernetesClusterDNSIP{}, `["10.0.0.1", 5]`, "entry 1: expected an IP address, got the number 5"},
		{KubernetesClusterDNSIP{}, `5`, "expected an IP address or a list of them"},
		{KubernetesClusterDNSIP{}, `{"a": "10.0.0.1"}`, "expected an IP address or a list of them, got an object"},

		{IntegerPercent{}, `0`, ""}, {IntegerPercent{}, `100`, ""}, {IntegerPercent{}, `85`, ""},
		{IntegerPercent{}, `"85"`, ""}, {IntegerPercent{}, `"0"`, ""},
		{IntegerPercent{}, `101`, "101 must be from 0 to 100"},
		{IntegerPercent{}, `-1`, "-1 must be from 0 to 100"},
		{IntegerPercent{}, `"101"`, "must be from 0 to 100"},
		{IntegerPercent{}, `99999999999999999999`, "must be from 0 to 100"},
		{IntegerPercent{}, `42.5`, "not a whole number"},
		{IntegerPercent{}, `1e2`, "not a whole number"},
		{IntegerPercent{}, `"abc"`, `"abc" is not a whole number`},
		{IntegerPercent{}, `""`, "not a whole number"},
		{IntegerPercent{}, `true`, "expected a number from 0 to 100"},
		{IntegerPercent{}, `[85]`, "expected a number from 0 to 100"},
	})
}

// The JSONChecker types must also decode with encoding/json, in every form
// their CheckJSON accepts.
func TestKubernetesUnmarshal(t *testing.T) {
	var s KubernetesSettings
	if err := json.Unmarshal([]byte(realisticKubernetesDoc), &s); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.ClusterDNSIP, KubernetesClusterDNSIP{"10.100.0.10"}) {
		t.Errorf("cluster-dns-ip = %v, want [10.100.0.10]", s.ClusterDNSIP)
	}
	if p, err := s.ImageGCHighThresholdPercent.Percent(); err != nil || p != 85 {
		t.Errorf("image-gc-high-threshold-percent = %d, %v; want 85", p, err)
	}
	if p, err := s.ImageGCLowThresholdPercent.Percent(); err != nil || p != 80 {
		t.Errorf("image-gc-low-threshold-percent = %d, %v; want 80", p, err)
	}
	if got := s.NodeTaints["dedicated"]; len(got) != 2 || got[1] != "experimental:NoExecute" {
		t.Errorf("node-taints.dedicated = %v", got)
	}
	if got := s.MemoryManagerReservedMemory["0"]; got.Hugepages2Mi == nil || *got.Hugepages2Mi != "512Mi" {
		t.Errorf("memory-manager-reserved-memory.0 = %+v", got)
	}

	// Numbers and strings are written back as given.
	out, err := json.Marshal(struct {
		High IntegerPercent `json:"high,omitempty"`
		Low  IntegerPercent `json:"low,omitempty"`
		None IntegerPercent `json:"none,omitempty"`
	}{s.ImageGCHighThresholdPercent, s.ImageGCLowThresholdPercent, nil})
	if err != nil || string(out) != `{"high":85,"low":"80"}` {
		t.Errorf("marshal = %s, %v", out, err)
	}

	var list struct {
		IPs KubernetesClusterDNSIP `json:"ips"`
		P   *IntegerPercent        `json:"p"`
	}
	if err := json.Unmarshal([]byte(`{"ips": ["10.0.0.1", "::1"], "p": null}`), &list); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(list.IPs, KubernetesClusterDNSIP{"10.0.0.1", "::1"}) || list.P != nil {
		t.Errorf("decoded %+v", list)
	}
	if b, err := IntegerPercent(nil).MarshalJSON(); err != nil || string(b) != "null" {
		t.Errorf("empty IntegerPercent marshals to %s, %v; want null", b, err)
	}
	var plain struct {
		IPs KubernetesClusterDNSIP `json:"ips"`
		P   IntegerPercent         `json:"p"`
	}
	if err := json.Unmarshal([]byte(`{"ips": null, "p": null}`), &plain); err != nil || plain.IPs != nil || plain.P != nil {
		t.Errorf("null decoded to %+v, %v; want empty values", plain, err)
	}
	for _, bad := range []string{`{"ips": "nope"}`, `{"ips": [1]}`, `{"p": 101}`, `{"p": "x"}`, `{"p": true}`} {
		if err := json.Unmarshal([]byte(bad), &list); err == nil {
			t.Errorf("json.Unmarshal(%s) succeeded, want an error", bad)
		}
	}
}

var kebabRe = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// Keys that Kubernetes spells with capitals (resource names), kept verbatim
// as Bottlerocket does.
var nonKebabKeys = map[string]bool{"hugepages-2Mi": true, "hugepages-1Gi": true}

// checkModelStruct walks a settings struct and checks the rules every group
// follows: kebab-case json names with omitempty, a one-sentence doc tag,
// optional (pointer, map or slice) fields, and map keys that validate.
func checkModelStruct(t *testing.T, typ reflect.Type, seen map[reflect.Type]bool) {
	t.Helper()
	if seen[typ] {
		return
	}
	seen[typ] = true
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		where := typ.Name() + "." + f.Name
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !kebabRe.MatchString(name) && !nonKebabKeys[name] {
			t.Errorf("%s: json name %q is not kebab-case", where, name)
		}
		if opts != "omitempty" {
			t.Errorf("%s: json tag %q lacks omitempty", where, f.Tag.Get("json"))
		}
		doc := f.Tag.Get("doc")
		if doc == "" || !strings.HasSuffix(doc, ".") || strings.ContainsAny(doc, "\n") || len(doc) > 120 {
			t.Errorf("%s: doc tag %q should be one short sentence", where, doc)
		}
		checkModelType(t, where, f.Type, true, seen)
	}
}

func checkModelType(t *testing.T, where string, ft reflect.Type, top bool, seen map[reflect.Type]bool) {
	t.Helper()
	if ft.Implements(jsonCheckerType) {
		if top && ft.Kind() != reflect.Slice && ft.Kind() != reflect.Pointer {
			t.Errorf("%s: %s is not optional", where, ft)
		}
		return
	}
	switch ft.Kind() {
	case reflect.Pointer:
		checkModelType(t, where, ft.Elem(), false, seen)
	case reflect.Map:
		if k := ft.Key(); k.Kind() != reflect.String || k.Name() == "string" || !k.Implements(validatorType) {
			t.Errorf("%s: map key %s is not a named string type implementing Validator", where, k)
		}
		checkModelType(t, where, ft.Elem(), false, seen)
	case reflect.Slice:
		checkModelType(t, where, ft.Elem(), false, seen)
	case reflect.Struct:
		checkModelStruct(t, ft, seen)
	case reflect.String:
		if top {
			t.Errorf("%s: %s is not optional", where, ft)
		}
		if !ft.Implements(validatorType) {
			t.Errorf("%s: string type %s has no Validate method", where, ft)
		}
	default:
		if top {
			t.Errorf("%s: %s is not optional", where, ft)
		}
	}
}

func TestKubernetesSettingsStruct(t *testing.T) {
	checkModelStruct(t, reflect.TypeFor[KubernetesSettings](), map[reflect.Type]bool{})
	// Every key of the settings table is present.
	fields := fieldByName(reflect.TypeFor[KubernetesSettings]())
	for _, k := range []string{"cluster-name", "api-server", "cluster-certificate", "cluster-domain", "standalone-mode",
		"authentication-mode", "bootstrap-token", "server-tls-bootstrap", "cloud-provider", "hostname-override-source",
		"credential-providers", "seccomp-default", "max-pods", "cluster-dns-ip", "node-ip", "pod-infra-container-image",
		"provider-id", "hostname-override", "kube-reserved", "system-reserved", "eviction-hard", "eviction-soft",
		"eviction-soft-grace-period", "eviction-max-pod-grace-period", "allowed-unsafe-sysctls", "node-labels",
		"node-taints", "registry-qps", "registry-burst", "event-qps", "event-burst", "kube-api-qps", "kube-api-burst",
		"container-log-max-size", "container-log-max-files", "log-level", "cpu-manager-policy",
		"cpu-manager-reconcile-period", "cpu-cfs-quota-enforced", "pod-pids-limit", "topology-manager-scope",
		"topology-manager-policy", "memory-manager-policy", "memory-manager-reserved-memory", "reserved-cpus",
		"shutdown-grace-period", "shutdown-grace-period-for-critical-pods", "image-gc-high-threshold-percent",
		"image-gc-low-threshold-percent", "server-certificate", "server-key", "static-pods"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("KubernetesSettings has no %q", k)
		}
	}
}

var (
	b64 = func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

	realisticKubernetesDoc = `{
	"cluster-name": "prod-east",
	"api-server": "https://ABCDEF0123456789.gr7.us-west-2.eks.amazonaws.com",
	"cluster-certificate": "` + b64("-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n") + `",
	"cluster-domain": "cluster.local",
	"standalone-mode": false,
	"authentication-mode": "aws",
	"server-tls-bootstrap": true,
	"cloud-provider": "external",
	"hostname-override-source": "private-dns-name",
	"credential-providers": {
		"ecr-credential-provider": {
			"enabled": true,
			"cache-duration": "12h",
			"image-patterns": ["*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr.*.amazonaws.com.cn"],
			"environment": {"AWS_PROFILE": "ecr", "AWS_REGION": "us-west-2"}
		}
	},
	"seccomp-default": true,
	"max-pods": 110,
	"cluster-dns-ip": "10.100.0.10",
	"node-ip": "192.168.1.10",
	"pod-infra-container-image": "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/pause:3.9",
	"provider-id": "aws:///us-west-2a/i-0123456789abcdef0",
	"hostname-override": "ip-192-168-1-10.us-west-2.compute.internal",
	"kube-reserved": {"cpu": "70m", "memory": "1465Mi", "ephemeral-storage": "1Gi"},
	"system-reserved": {"cpu": "100m", "memory": "100Mi"},
	"eviction-hard": {"memory.available": "100Mi", "nodefs.available": "10%", "nodefs.inodesFree": "5%"},
	"eviction-soft": {"memory.available": "300Mi"},
	"eviction-soft-grace-period": {"memory.available": "1m30s"},
	"eviction-max-pod-grace-period": 60,
	"allowed-unsafe-sysctls": ["net.core.somaxconn", "net.ipv4.*"],
	"node-labels": {"my.label": "value", "node.kubernetes.io/lifecycle": "spot", "empty": ""},
	"node-taints": {"dedicated": ["experimental:PreferNoSchedule", "experimental:NoExecute"], "special": [":NoSchedule"]},
	"registry-qps": 10, "registry-burst": 20,
	"event-qps": 50, "event-burst": 100,
	"kube-api-qps": 50, "kube-api-burst": 100,
	"container-log-max-size": "10Mi", "container-log-max-files": 5,
	"log-level": 2,
	"cpu-manager-policy": "static", "cpu-manager-reconcile-period": "10s",
	"cpu-cfs-quota-enforced": true, "pod-pids-limit": 1048576,
	"topology-manager-scope": "pod", "topology-manager-policy": "single-numa-node",
	"memory-manager-policy": "Static",
	"memory-manager-reserved-memory": {"0": {"enabled": true, "memory": "1Gi", "hugepages-2Mi": "512Mi"}},
	"reserved-cpus": "0-1",
	"shutdown-grace-period": "30s", "shutdown-grace-period-for-critical-pods": "10s",
	"image-gc-high-threshold-percent": 85, "image-gc-low-threshold-percent": "80",
	"server-certificate": "` + b64("cert") + `", "server-key": "` + b64("key") + `",
	"static-pods": {"my-pod": {"enabled": true, "manifest": "` + b64("apiVersion: v1\nkind: Pod\n") + `"}}
}`
)

func TestKubernetesDocument(t *testing.T) {
	typ := reflect.TypeFor[KubernetesSettings]()
	if errs := validateDoc(t, typ, realisticKubernetesDoc); len(errs) != 0 {
		t.Fatalf("realistic document refused: %v", errs)
	}
	// The other forms Bottlerocket accepts.
	if errs := validateDoc(t, typ, `{"cluster-dns-ip": ["10.100.0.10", "fd00::a"], "cloud-provider": "", "image-gc-low-threshold-percent": 0}`); len(errs) != 0 {
		t.Fatalf("alternative forms refused: %v", errs)
	}

	bad := `{
	"cluster-nmae": "prod",
	"node-labels": {"Example.com/x": "v", "-bad": "v", "ok": "-bad-", "my.label": "fine"},
	"node-taints": {"dedicated": ["ok:NoSchedule", "oops"], "other": "value:NoSchedule"},
	"max-pods": "abc",
	"eviction-hard": {"disk.available": "10%", "memory.available": "100%"},
	"image-gc-high-threshold-percent": 101,
	"cluster-dns-ip": ["10.0.0.1", "x"],
	"credential-providers": {"ecr": {"enabled": "yes", "environment": {"1BAD": "x"}}},
	"static-pods": {"my_pod": {"enabled": true}},
	"kube-reserved": {"gpu": "1"},
	"bootstrap-token": "not-a-token",
	"cpu-manager-reconcile-period": "10"
}`
	wantFieldErrors(t, validateDoc(t, typ, bad), map[string]string{
		"settings.kubernetes.cluster-nmae":                              "unknown setting (allowed here: allowed-unsafe-sysctls, api-server,",
		`settings.kubernetes.node-labels."Example.com/x"`:               "invalid name: prefix \"Example.com\" must be a lower-case DNS name",
		"settings.kubernetes.node-labels.-bad":                          "invalid name: name \"-bad\"",
		"settings.kubernetes.node-labels.ok":                            `"-bad-" must be A-Z`,
		"settings.kubernetes.node-taints.dedicated[1]":                  `"oops" must be written [value]:effect`,
		"settings.kubernetes.node-taints.other":                         `expected a list, got the string "value:NoSchedule"`,
		"settings.kubernetes.max-pods":                                  `expected a non-negative integer, got the string "abc"`,
		`settings.kubernetes.eviction-hard."disk.available"`:            `invalid name: "disk.available" must be one of`,
		`settings.kubernetes.eviction-hard."memory.available"`:          "below 100%",
		"settings.kubernetes.image-gc-high-threshold-percent":           "101 must be from 0 to 100",
		"settings.kubernetes.cluster-dns-ip":                            `entry 1: "x" is not an IP address`,
		"settings.kubernetes.credential-providers.ecr.enabled":          `expected true or false, got the string "yes"`,
		"settings.kubernetes.credential-providers.ecr.environment.1BAD": "invalid name",
		"settings.kubernetes.static-pods.my_pod":                        "invalid name",
		"settings.kubernetes.kube-reserved.gpu":                         "must be one of: cpu, memory, ephemeral-storage",
		"settings.kubernetes.bootstrap-token":                           "6 and then 16 characters",
		"settings.kubernetes.cpu-manager-reconcile-period":              `"10" is not a duration`,
	})
}
