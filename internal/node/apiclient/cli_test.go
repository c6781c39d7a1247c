package apiclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/node/apiclient"
	"github.com/gantry-os/gantry/internal/settings/apiserver"
	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/model"
	"github.com/gantry-os/gantry/pkg/osrelease"
)

// startServer runs a real apiserver on a Unix socket and returns its path.
func startServer(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	store, err := datastore.Open(context.Background(), dir, datastore.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := model.ForVariant("metal-dev")
	socket := filepath.Join(dir, "api.sock")
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := apiserver.Listen(ctx, socket, -1)
	if err != nil {
		t.Fatal(err)
	}
	srv := apiserver.New(apiserver.Config{Store: store, Model: m, Release: osrelease.Release{VariantID: "metal-dev", VersionID: "1.0.0", Arch: "x86_64"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; store.Close() })
	return socket
}

type result struct {
	code        int
	out, errOut string
}

func run(t *testing.T, socket, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := apiclient.Main(context.Background(), append([]string{"--socket-path", socket}, args...), apiclient.IO{In: strings.NewReader(stdin), Out: &out, Err: &errOut})
	return result{code, out.String(), errOut.String()}
}

func mustRun(t *testing.T, socket, stdin string, args ...string) string {
	t.Helper()
	r := run(t, socket, stdin, args...)
	if r.code != 0 {
		t.Fatalf("apiclient %v: exit %d: %s", args, r.code, r.errOut)
	}
	return r.out
}

func TestSeedExamples(t *testing.T) {
	s := startServer(t)
	mustRun(t, s, "", "-m", "PATCH", "-u", "/settings", "-d", `{"motd": "my own value!"}`)
	if out := mustRun(t, s, "", "-u", "/tx"); strings.TrimSpace(out) != `{"motd":"my own value!"}` {
		t.Fatalf("GET /tx = %s", out)
	}
	if out := mustRun(t, s, "", "-m", "POST", "-u", "/tx/commit_and_apply"); strings.TrimSpace(out) != `["settings.motd"]` {
		t.Fatalf("commit = %s", out)
	}
	if out := mustRun(t, s, "", "-u", "/settings"); strings.TrimSpace(out) != `{"motd":"my own value!"}` {
		t.Fatalf("GET /settings = %s", out)
	}
	mustRun(t, s, "", "-u", "/settings?tx=FOO", "-X", "PATCH", "-d", `{"host-containers": {"custom": {"source": "registry.example.com/my-container:v1", "enabled": true, "superpowered": false}}}`)
	mustRun(t, s, "", "raw", "-m", "POST", "-u", "/tx/commit?tx=FOO")
	out := mustRun(t, s, "", "get", "settings.host-containers.custom")
	var doc map[string]map[string]map[string]map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["settings"]["host-containers"]["custom"]["source"] != "registry.example.com/my-container:v1" {
		t.Fatalf("get = %s", out)
	}
}

func TestSetAndGet(t *testing.T) {
	s := startServer(t)
	mustRun(t, s, "", "set", "motd=42", `kernel.sysctl."vm.max_map_count"=262144`, "settings.updates.seed=7")
	mustRun(t, s, "", "set", "--json", `{"settings": {"ntp": {"time-servers": ["a.example"]}}}`)
	out := mustRun(t, s, "", "get", "settings.motd", "settings.kernel", "settings.updates", "settings.ntp")
	want := `{"settings":{"kernel":{"sysctl":{"vm.max_map_count":"262144"}},"motd":"42","ntp":{"time-servers":["a.example"]},"updates":{"seed":7}}}`
	var a, b any
	json.Unmarshal([]byte(out), &a)
	json.Unmarshal([]byte(want), &b)
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	if string(ab) != string(bb) {
		t.Fatalf("get = %s, want %s", ab, bb)
	}
	out = mustRun(t, s, "", "get")
	if !strings.Contains(out, `"os"`) || !strings.Contains(out, `"variant_id": "metal-dev"`) {
		t.Fatalf("get with no prefix = %s", out)
	}
	if out := mustRun(t, s, "", "get", "/os"); !strings.Contains(out, `"version_id": "1.0.0"`) {
		t.Fatalf("get /os = %s", out)
	}
	// A failed set leaves no transaction behind.
	r := run(t, s, "", "set", "motd=ok", "updates.seed=lots")
	if r.code != 1 || !strings.Contains(r.errOut, "Status 400 when PATCHing /settings/keypair") || !strings.Contains(r.errOut, "settings.updates.seed") {
		t.Fatalf("bad set: %+v", r)
	}
	if out := mustRun(t, s, "", "-u", "/tx/list"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("transactions left after a failed set: %s", out)
	}
	if out := mustRun(t, s, "", "get", "settings.motd"); !strings.Contains(out, `"42"`) {
		t.Fatalf("failed set changed motd: %s", out)
	}
}

func TestApplySources(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	f1 := filepath.Join(dir, "a.toml")
	os.WriteFile(f1, []byte("[settings]\nmotd = \"from file\"\n[settings.updates]\nseed = 1\n"), 0o644)
	f2 := filepath.Join(dir, "b.json")
	os.WriteFile(f2, []byte(`{"settings": {"updates": {"seed": 2}}}`), 0o644)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/user-data.toml" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "[settings.network]\nhostname = \"from-web\"\n")
	}))
	defer web.Close()
	mustRun(t, s, "", "apply", f1, "file://"+f2, web.URL+"/user-data.toml")
	out := mustRun(t, s, "", "-u", "/settings")
	if strings.TrimSpace(out) != `{"motd":"from file","network":{"hostname":"from-web"},"updates":{"seed":2}}` {
		t.Fatalf("after apply: %s", out)
	}
	mustRun(t, s, "[settings]\nmotd = \"from stdin\"\n", "apply")
	if out := mustRun(t, s, "", "-u", "/settings?keys=settings.motd"); strings.TrimSpace(out) != `{"motd":"from stdin"}` {
		t.Fatalf("after stdin apply: %s", out)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"apply", web.URL + "/missing"}, "status 404"},
		{[]string{"apply", filepath.Join(dir, "nope.toml")}, "no such file"},
		{[]string{"apply", "s3://bucket/x"}, "unsupported scheme"},
	}
	for _, tt := range tests {
		if r := run(t, s, "", tt.args...); r.code != 1 || !strings.Contains(r.errOut, tt.want) {
			t.Errorf("apiclient %v: %+v, want exit 1 and %q", tt.args, r, tt.want)
		}
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[other]\nx = 1\n"), 0o644)
	if r := run(t, s, "", "apply", bad); r.code != 1 || !strings.Contains(r.errOut, `has no top-level "settings"`) {
		t.Errorf("apply without settings: %+v", r)
	}
}

func TestUsageAndErrors(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "give -u URI"},
		{[]string{"raw"}, 2, "raw needs -u"},
		{[]string{"--bogus"}, 2, "unknown flag"},
		{[]string{"set"}, 2, "nothing to set"},
		{[]string{"set", "a=b", "--json", "{}"}, 2, "not both"},
		{[]string{"get", "/os", "settings"}, 2, "not both"},
		{[]string{"-u", "/settings?keys="}, 1, "Status 400 when GETing /settings?keys=: Input 'keys' cannot be empty"},
		{[]string{"-m", "POST", "-u", "/tx/commit"}, 1, "Status 422"},
		{[]string{"--socket-path", filepath.Join(t.TempDir(), "none.sock"), "-u", "/settings"}, 1, "no such file"},
	}
	for _, tt := range tests {
		r := run(t, s, "", tt.args...)
		if r.code != tt.code || !strings.Contains(r.errOut, tt.want) {
			t.Errorf("apiclient %v: exit %d, stderr %q; want exit %d and %q", tt.args, r.code, r.errOut, tt.code, tt.want)
		}
	}
}
