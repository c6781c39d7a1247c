package hostctr

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRegistryHosts(t *testing.T) {
	cfg := RegistryConfig{
		Mirrors: map[string]Mirror{
			"docker.io":     {Endpoints: []string{"mirror.example.com", "http://10.0.2.2:5000"}},
			"*":             {Endpoints: []string{"localhost:5000/base"}},
			"ghcr.io":       {Endpoints: nil},
			"quay.example":  {Endpoints: []string{"https://q.example/v2/"}},
			"localhost:443": {Endpoints: []string{"[::1]:5001"}},
		},
	}
	for _, tc := range []struct {
		registry string
		want     []string // scheme://host+path of each endpoint, in order
	}{
		{"docker.io", []string{"https://mirror.example.com/v2", "http://10.0.2.2:5000/v2", "https://registry-1.docker.io/v2"}},
		{"registry.example.com", []string{"http://localhost:5000/base", "https://registry.example.com/v2"}},
		{"ghcr.io", []string{"https://ghcr.io/v2"}},
		{"quay.example", []string{"https://q.example/v2/", "https://quay.example/v2"}},
		{"localhost:443", []string{"http://[::1]:5001/v2", "http://localhost:443/v2"}},
	} {
		hosts, err := cfg.Hosts(nil)(tc.registry)
		if err != nil {
			t.Fatalf("%s: %v", tc.registry, err)
		}
		var got []string
		for _, h := range hosts {
			got = append(got, h.Scheme+"://"+h.Host+h.Path)
			if h.Capabilities.Has(1<<2) || !h.Capabilities.Has(1) || !h.Capabilities.Has(2) {
				t.Errorf("%s: %s has capabilities %b, want pull and resolve only", tc.registry, h.Host, h.Capabilities)
			}
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: endpoints %v, want %v", tc.registry, got, tc.want)
		}
	}
}

func TestRegistryCredentials(t *testing.T) {
	cfg := RegistryConfig{Creds: map[string]Credential{
		"docker.io":       {Username: "hub", Password: "hubpw"},
		"reg.example.com": {Auth: "dXNlcjpwYXNz"}, // user:pass
		"tok.example.com": {IdentityToken: "refresh"},
		"bad.example.com": {Auth: "!!"},
	}}
	for _, tc := range []struct{ host, user, secret, err string }{
		{"registry-1.docker.io", "hub", "hubpw", ""},
		{"reg.example.com", "user", "pass", ""},
		{"tok.example.com", "", "refresh", ""},
		{"other.example.com", "", "", ""},
		{"bad.example.com", "", "", "not base64"},
	} {
		u, s, err := cfg.credentials(tc.host)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: error %v, want %q", tc.host, err, tc.err)
		}
		if u != tc.user || s != tc.secret {
			t.Errorf("%s: %q/%q, want %q/%q", tc.host, u, s, tc.user, tc.secret)
		}
	}
}

func TestLoadRegistryConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, body, err string }{
		{"ok", "[mirrors.\"docker.io\"]\nendpoints = [\"http://10.0.2.2:5000\"]\n[creds.\"docker.io\"]\nusername = \"u\"\npassword = \"p\"\n", ""},
		{"empty", "", ""},
		{"unknown key", "[mirrors.\"docker.io\"]\nendpoint = [\"x\"]\n", `unknown key mirrors."docker.io".endpoint`},
		{"bad scheme", "[mirrors.\"docker.io\"]\nendpoints = [\"ftp://x\"]\n", "scheme must be http or https"},
		{"syntax", "[mirrors\n", "registry config"},
	} {
		p := filepath.Join(dir, tc.name+".toml")
		if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadRegistryConfig(p)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
	if _, err := LoadRegistryConfig(filepath.Join(dir, "missing.toml")); err == nil {
		t.Error("a missing file was accepted")
	}
}

// TestLoadRenderedRegistryConfig reads what the variants' host-ctr-toml
// template renders (the render package's expected output), so that the
// template and this parser cannot drift apart.
func TestLoadRenderedRegistryConfig(t *testing.T) {
	c, err := LoadRegistryConfig(filepath.Join("..", "..", "settings", "render", "testdata", "host-ctr.expected"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Mirrors["ghcr.io"].Endpoints; len(got) != 2 || got[0] != "http://10.0.2.2:5000" {
		t.Errorf("ghcr.io mirrors: %v", got)
	}
	if u, p, err := c.credentials("registry.example.com"); err != nil || u != "me" || p != `p"w` {
		t.Errorf("credentials: %q %q %v", u, p, err)
	}
	if u, p, err := c.credentials("registry-1.docker.io"); err != nil || u != "me" || p != "pw" {
		t.Errorf("Docker Hub credentials from auth: %q %q %v", u, p, err)
	}
}

func TestRetryWaits(t *testing.T) {
	r := DefaultRetry()
	var got []time.Duration
	for n := range 7 {
		got = append(got, r.Wait(n))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("waits %v, want %v seconds", got, want)
		}
	}
	for range 100 {
		if j := r.jitter(); j < 2*time.Second || j >= 6*time.Second {
			t.Fatalf("jitter %v outside [2s, 6s)", j)
		}
	}
}

func TestNormalizeRef(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"ubuntu", "docker.io/library/ubuntu:latest", ""},
		{"10.0.2.2:5000/gantry/admin:v1", "10.0.2.2:5000/gantry/admin:v1", ""},
		{"ghcr.io/gantry-os/control@sha256:" + strings.Repeat("a", 64), "ghcr.io/gantry-os/control@sha256:" + strings.Repeat("a", 64), ""},
		{"gantry/Admin", "", "not an image reference"},
		{"", "", "not an image reference"},
	} {
		got, err := NormalizeRef(tc.in)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}
