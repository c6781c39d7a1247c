package model

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"sort"
	"strings"
	"testing"
	"time"
)

func mustModel(t *testing.T, variant string) *Model {
	t.Helper()
	m, err := ForVariant(variant)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func pairNames(t *testing.T, m map[string]string) []string {
	t.Helper()
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func TestSettingsPairs(t *testing.T) {
	m := mustModel(t, "metal-dev")
	tests := []struct {
		name    string
		body    string
		want    []string // key=value, sorted
		wantErr []string // substrings of the error
	}{
		{name: "motd", body: `{"motd": "my own value!"}`, want: []string{`settings.motd="my own value!"`}},
		{name: "host container", body: `{"host-containers": {"custom": {"source": "registry.example.com/my-container:v1", "enabled": true, "superpowered": false}}}`,
			want: []string{`settings.host-containers.custom.enabled=true`, `settings.host-containers.custom.source="registry.example.com/my-container:v1"`, `settings.host-containers.custom.superpowered=false`}},
		{name: "sysctl quoted", body: `{"kernel": {"sysctl": {"vm.max_map_count": "262144"}}}`, want: []string{`settings.kernel.sysctl."vm.max_map_count"="262144"`}},
		{name: "list stored whole", body: `{"ntp": {"time-servers": ["a.example", "10.0.0.1"]}}`, want: []string{`settings.ntp.time-servers=["a.example","10.0.0.1"]`}},
		{name: "null dropped", body: `{"motd": null, "updates": {"seed": 5}}`, want: []string{`settings.updates.seed=5`}},
		{name: "unknown group", body: `{"motdd": "x"}`, wantErr: []string{"settings.motdd: unknown settings group"}},
		{name: "unknown field", body: `{"updates": {"sed": 1}}`, wantErr: []string{"settings.updates.sed: unknown setting", "allowed here: ignore-waves"}},
		{name: "wrong type", body: `{"updates": {"ignore-waves": "yes"}}`, wantErr: []string{`settings.updates.ignore-waves: expected true or false, got the string "yes"`}},
		{name: "seed range", body: `{"updates": {"seed": 4096}}`, wantErr: []string{"settings.updates.seed: expected an integer 0-2047"}},
		{name: "bad hostname", body: `{"network": {"hostname": "-bad"}}`, wantErr: []string{"settings.network.hostname:"}},
		{name: "bad sysctl key", body: `{"kernel": {"sysctl": {"../x": "1"}}}`, wantErr: []string{`settings.kernel.sysctl."../x": invalid name`}},
		{name: "bad list elem", body: `{"ntp": {"time-servers": ["ok.example", "how are you"]}}`, wantErr: []string{`settings.ntp.time-servers[1]: "how are you" is not a URL`}},
		{name: "bad image reference", body: `{"host-containers": {"custom": {"source": "Registry/My-Container"}}}`,
			wantErr: []string{`settings.host-containers.custom.source: "Registry/My-Container" is not an image reference`, "lower case"}},
		{name: "not an apiclient command", body: `{"bootstrap-commands": {"a": {"commands": [["apiclient", "set", "motd=x"], ["rm", "-rf", "/"]]}}}`,
			wantErr: []string{`settings.bootstrap-commands.a.commands[1]: must start with "apiclient"`}},
		{name: "bad identifier", body: `{"host-containers": {"my_ctr": {"enabled": true}}}`, wantErr: []string{"settings.host-containers.my_ctr: invalid name"}},
		{name: "two errors", body: `{"motd": 3, "kernel": {"lockdown": "full"}}`, wantErr: []string{"settings.motd: expected a string", `settings.kernel.lockdown: "full" must be one of`}},
		{name: "not an object", body: `[1]`, wantErr: []string{"settings: expected an object"}},
		{name: "malformed", body: `{"motd": `, wantErr: []string{"malformed JSON"}},
		{name: "trailing", body: `{"motd": "a"} {}`, wantErr: []string{"unexpected data after"}},
		{name: "group not in variant", body: `{"kubernetes": {"cluster-name": "x"}}`, wantErr: []string{"settings.kubernetes: unknown settings group for variant metal-dev"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pairs, err := m.SettingsPairs([]byte(tt.body))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("accepted %s", tt.body)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, v := range pairs {
				got[k.Name()] = string(v)
			}
			if g := pairNames(t, got); strings.Join(g, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("pairs = %v, want %v", g, tt.want)
			}
		})
	}
}

func TestKeypairPairs(t *testing.T) {
	m := mustModel(t, "metal-dev")
	tests := []struct {
		lines   []string
		want    []string
		wantErr string
	}{
		{lines: []string{"motd=hello"}, want: []string{`settings.motd="hello"`}},
		{lines: []string{"settings.motd=42"}, want: []string{`settings.motd="42"`}},
		{lines: []string{`kernel.sysctl."vm.max_map_count"=262144`}, want: []string{`settings.kernel.sysctl."vm.max_map_count"="262144"`}},
		{lines: []string{"updates.seed=12", "updates.ignore-waves=true"}, want: []string{`settings.updates.ignore-waves=true`, `settings.updates.seed=12`}},
		{lines: []string{`ntp.time-servers=["a.example"]`}, want: []string{`settings.ntp.time-servers=["a.example"]`}},
		{lines: []string{"motd=a=b"}, want: []string{`settings.motd="a=b"`}},
		{lines: []string{"host-containers.admin.enabled=true"}, want: []string{`settings.host-containers.admin.enabled=true`}},
		{lines: []string{"motd"}, wantErr: "motd: expected key=value"},
		{lines: []string{"updates.ignore-waves=yes"}, wantErr: `settings.updates.ignore-waves: expected true or false, got "yes"`},
		{lines: []string{"updates.seed=abc"}, wantErr: "settings.updates.seed: expected an integer 0-2047"},
		{lines: []string{"nope.x=1"}, wantErr: "settings.nope.x: unknown settings group"},
		{lines: []string{"kernel.sysctl.vm.max_map_count=1"}, wantErr: `settings.kernel.sysctl.vm is a single value and has no "max_map_count" below it`},
		{lines: []string{"ntp.time-servers=a.example"}, wantErr: "settings.ntp.time-servers: this setting is a list: give its value as JSON"},
		{lines: []string{"motd=a", "motd=b"}, wantErr: "settings.motd: given more than once"},
		{lines: []string{"a b=1"}, wantErr: "a b: character ' '"},
		{lines: []string{"settings=1"}, wantErr: "name a setting"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.lines, ","), func(t *testing.T) {
			pairs, err := m.KeypairPairs(tt.lines)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, v := range pairs {
				got[k.Name()] = string(v)
			}
			if g := pairNames(t, got); strings.Join(g, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("pairs = %v, want %v", g, tt.want)
			}
		})
	}
}

func TestModeledTypes(t *testing.T) {
	cert := base64.StdEncoding.EncodeToString([]byte(testCertPEM(t)))
	tests := []struct {
		v  Validator
		ok bool
	}{
		{SingleLineString("one line"), true}, {SingleLineString("two\nlines"), false}, {SingleLineString("x\u2028"), false},
		{ValidBase64("aGVsbG8="), true}, {ValidBase64("not base64!"), false},
		{ValidLinuxHostname("node-1.example"), true}, {ValidLinuxHostname("Upper"), false}, {ValidLinuxHostname(".x"), false},
		{ValidLinuxHostname(strings.Repeat("a", 64)), false}, {ValidLinuxHostname("a.-b"), false},
		{Identifier("admin-2"), true}, {Identifier("a_b"), false}, {Identifier(strings.Repeat("a", 77)), false},
		{URL("https://example.com/x"), true}, {URL("example.com"), true}, {URL("127.0.0.1"), true}, {URL(".cluster.local"), true},
		{URL("how are you"), false}, {URL(""), false},
		{FriendlyVersion("latest"), true}, {FriendlyVersion("v1.2.3"), true}, {FriendlyVersion("1.2"), false},
		{DNSDomain("cluster.local"), true}, {DNSDomain(".x"), false}, {DNSDomain("10.0.0.1"), false},
		{SysctlKey("vm.max_map_count"), true}, {SysctlKey("net/ipv4/ip_forward"), true}, {SysctlKey("a..b"), false}, {SysctlKey("/x"), false},
		{KmodKey("br_netfilter"), true}, {KmodKey("a.b"), false},
		{BootConfigKey("console"), true}, {BootConfigKey("a..b"), false},
		{BootConfigValue("ttyS0,115200"), true}, {BootConfigValue(`a'"`), false}, {BootConfigValue("é"), false},
		{Lockdown("integrity"), true}, {Lockdown("full"), false},
		{BootstrapContainerMode("once"), true}, {BootstrapContainerMode("twice"), false},
		{PemCertificateString(""), true}, {PemCertificateString(cert), true}, {PemCertificateString("aGVsbG8="), false},
		{IPAddress("fe80::1"), true}, {IPAddress("10.0.0.300"), false},
		{FileMode("0600"), true}, {FileMode("644"), true}, {FileMode("0999"), false},
		{OCICapability("sys-admin"), true}, {OCICapability("CAP_SYS_ADMIN"), false},
	}
	for _, tt := range tests {
		err := tt.v.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%T(%q).Validate() = %v, want ok=%v", tt.v, tt.v, err, tt.ok)
		}
	}
}

func TestJSONCheckers(t *testing.T) {
	tests := []struct {
		c   JSONChecker
		doc string
		ok  bool
	}{
		{EtcHostsEntries{}, `[["10.0.0.1", ["a", "b.example"]]]`, true},
		{EtcHostsEntries{}, `[["not-ip", ["a"]]]`, false},
		{EtcHostsEntries{}, `[["10.0.0.1", []]]`, false},
		{UpdateSeed(0), `2047`, true}, {UpdateSeed(0), `-1`, false}, {UpdateSeed(0), `"5"`, false},
		{RlimitNumber{}, `-1`, true}, {RlimitNumber{}, `"unlimited"`, true}, {RlimitNumber{}, `-2`, false}, {RlimitNumber{}, `"lots"`, false},
	}
	for _, tt := range tests {
		v, err := DecodeJSON([]byte(tt.doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := tt.c.CheckJSON(v); (err == nil) != tt.ok {
			t.Errorf("%T.CheckJSON(%s) = %v, want ok=%v", tt.c, tt.doc, err, tt.ok)
		}
	}
}

func TestCheckSection(t *testing.T) {
	good := `{"motd": {"configuration-files": ["motd"], "restart-commands": []}}`
	v, _ := DecodeJSON([]byte(good))
	if err := CheckSection("services", v); err != nil {
		t.Fatal(err)
	}
	v, _ = DecodeJSON([]byte(`{"motd": {"path": "/etc/motd", "template-path": "/t", "mode": "rwx"}}`))
	if err := CheckSection("configuration-files", v); err == nil || !strings.Contains(err.Error(), "configuration-files.motd.mode") {
		t.Fatalf("bad mode: %v", err)
	}
}

func TestVariants(t *testing.T) {
	for v := range BuiltinVariants() {
		if _, err := ForVariant(v); err != nil {
			t.Errorf("variant %s: %v", v, err)
		}
	}
	if _, err := ForVariant("nope"); err == nil {
		t.Error("unknown variant accepted")
	}
	if _, err := New("x", []string{"motd", "bogus"}); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown group: %v", err)
	}
}

// FuzzSettingsPairs checks that no PATCH body makes validation panic, and that
// accepted bodies flatten into keys that parse.
func FuzzSettingsPairs(f *testing.F) {
	for _, s := range []string{`{"motd":"x"}`, `{"kernel":{"sysctl":{"a.b":"1"}}}`, `{"host-containers":{"a":{"enabled":true}}}`,
		`{"updates":{"seed":1e3}}`, `{"network":{"hosts":[["1.1.1.1",["a"]]]}}`, `[]`, `{"motd":null}`, `{"oci-defaults":{}}`} {
		f.Add([]byte(s))
	}
	m, err := ForVariant("metal-k8s-1.37")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		pairs, err := m.SettingsPairs(body)
		if err != nil {
			return
		}
		for k := range pairs {
			if !strings.HasPrefix(k.Name(), "settings.") {
				t.Fatalf("key %s outside settings", k)
			}
		}
	})
}

// FuzzKeypairPairs checks that no key=value line makes the parser panic.
func FuzzKeypairPairs(f *testing.F) {
	for _, s := range []string{"motd=x", `kernel.sysctl."a.b"=1`, "updates.seed=3", "=", "a", `ntp.time-servers=["x"]`, `"=1`} {
		f.Add(s)
	}
	m, err := ForVariant("metal-k8s-1.37")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m.KeypairPairs([]string{line})
	})
}

// testCertPEM makes a throwaway self-signed certificate.
func testCertPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gantry test"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestResolveVariant(t *testing.T) {
	tests := []struct {
		named, release, want string
		fallback             bool
	}{
		{"metal-k8s-1.37", "metal-dev", "metal-k8s-1.37", false},
		{"", "acme-edge", "acme-edge", false},
		{"", "", DefaultVariant, true},
	}
	for _, tc := range tests {
		if got, fb := ResolveVariant(tc.named, tc.release); got != tc.want || fb != tc.fallback {
			t.Errorf("ResolveVariant(%q, %q) = %q, %v; want %q, %v", tc.named, tc.release, got, fb, tc.want, tc.fallback)
		}
	}
}
