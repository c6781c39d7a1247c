package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gantry-os/gantry/datastore"
	"github.com/gantry-os/gantry/model"
	"github.com/gantry-os/gantry/osrelease"
)

// testEnv is a real server on a real Unix socket, with a client; every
// exchange is checked against docs/openapi.yaml.
type testEnv struct {
	t       *testing.T
	store   *datastore.Store
	socket  string
	client  *http.Client
	applier *recordingApplier
	spec    *specValidator
}

type recordingApplier struct {
	mu    sync.Mutex
	calls [][]string
	err   error
}

func (a *recordingApplier) Apply(ctx context.Context, keys []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, keys)
	return a.err
}

func newTestEnv(t *testing.T, variant string) *testEnv {
	t.Helper()
	dir := t.TempDir()
	store, err := datastore.Open(context.Background(), dir, datastore.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	m, err := model.ForVariant(variant)
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "api.sock")
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := Listen(ctx, socket, -1)
	if err != nil {
		t.Fatal(err)
	}
	app := &recordingApplier{}
	rel := osrelease.Release{PrettyName: "Gantry 1.0.0", VariantID: variant, VersionID: "1.0.0", BuildID: "abc", Arch: "x86_64"}
	srv := New(Config{Store: store, Model: m, Release: rel, Applier: app, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	return &testEnv{t: t, store: store, socket: socket, client: client, applier: app, spec: loadSpec(t)}
}

// do sends a request and returns status and body, validating both against
// the OpenAPI document.
func (e *testEnv) do(method, uri, body string) (int, string) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://localhost"+uri, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	e.spec.check(e.t, method, uri, body, resp, out)
	return resp.StatusCode, string(out)
}

func (e *testEnv) seed(section datastore.Section, kv map[string]string) {
	e.t.Helper()
	pairs := map[datastore.Key]json.RawMessage{}
	for k, v := range kv {
		pairs[datastore.MustKey(datastore.DataKey, k)] = json.RawMessage(v)
	}
	if err := e.store.Set(context.Background(), section, pairs); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) seedServices() {
	e.seed(datastore.Live, map[string]string{
		"services.motd.configuration-files":        `["motd"]`,
		"services.motd.restart-commands":           `[]`,
		"services.ntp.configuration-files":         `["chrony"]`,
		"services.ntp.restart-commands":            `["/bin/true"]`,
		"configuration-files.motd.path":            `"/etc/motd"`,
		"configuration-files.motd.template-path":   `"/t/motd"`,
		"configuration-files.chrony.path":          `"/etc/chrony.conf"`,
		"configuration-files.chrony.template-path": `"/t/chrony"`,
		"configuration-files.chrony.mode":          `"0600"`,
	})
	as := datastore.MustKey(datastore.MetaKey, "affected-services")
	gen := datastore.MustKey(datastore.MetaKey, "setting-generator")
	err := e.store.SetMetadata(context.Background(), []datastore.Metadata{
		{Key: datastore.MustKey(datastore.DataKey, "settings.motd"), Name: as, Value: json.RawMessage(`["motd"]`)},
		{Key: datastore.MustKey(datastore.DataKey, "settings.ntp"), Name: as, Value: json.RawMessage(`["ntp"]`)},
		{Key: datastore.MustKey(datastore.DataKey, "settings.updates.seed"), Name: gen, Value: json.RawMessage(`"bork seed"`)},
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

type step struct {
	method, uri, body string
	status            int
	want              string // exact body (JSON compared semantically), or "" to skip
	contains          string // substring of the body
}

func (e *testEnv) run(steps []step) {
	e.t.Helper()
	for i, s := range steps {
		status, body := e.do(s.method, s.uri, s.body)
		if status != s.status {
			e.t.Fatalf("step %d %s %s: status %d, want %d; body %q", i, s.method, s.uri, status, s.status, body)
		}
		if s.want != "" && !jsonEqual(body, s.want) {
			e.t.Fatalf("step %d %s %s: body %s, want %s", i, s.method, s.uri, body, s.want)
		}
		if s.contains != "" && !strings.Contains(body, s.contains) {
			e.t.Fatalf("step %d %s %s: body %q does not contain %q", i, s.method, s.uri, body, s.contains)
		}
	}
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

func TestTransactionLifecycle(t *testing.T) {
	e := newTestEnv(t, "metal-dev")
	e.run([]step{
		{"GET", "/settings", "", 200, `{}`, ""},
		{"PATCH", "/settings", `{"motd": "my own value!"}`, 204, "", ""},
		{"GET", "/tx", "", 200, `{"motd":"my own value!"}`, ""},
		{"GET", "/tx/list", "", 200, `["default"]`, ""},
		{"GET", "/settings", "", 200, `{}`, ""},
		{"POST", "/tx/commit_and_apply", "", 200, `["settings.motd"]`, ""},
		{"GET", "/settings", "", 200, `{"motd":"my own value!"}`, ""},
		{"GET", "/tx/list", "", 200, `[]`, ""},
		{"POST", "/tx/commit", "", 422, "", "no pending changes"},
		{"PATCH", "/settings?tx=FOO", `{"host-containers": {"custom": {"source": "MY-CONTAINER-URI", "enabled": true, "superpowered": false}}}`, 204, "", ""},
		{"GET", "/tx?tx=FOO", "", 200, `{"host-containers":{"custom":{"enabled":true,"source":"MY-CONTAINER-URI","superpowered":false}}}`, ""},
		{"GET", "/tx", "", 200, `{}`, ""},
		{"POST", "/tx/commit?tx=FOO", "", 200, `["settings.host-containers.custom.enabled","settings.host-containers.custom.source","settings.host-containers.custom.superpowered"]`, ""},
		{"PATCH", "/settings/keypair?tx=kp", `{"request_payload": ["motd=42", "kernel.sysctl.\"vm.max_map_count\"=262144"]}`, 204, "", ""},
		{"GET", "/tx?tx=kp", "", 200, `{"kernel":{"sysctl":{"vm.max_map_count":"262144"}},"motd":"42"}`, ""},
		{"DELETE", "/tx?tx=kp", "", 200, `["settings.kernel.sysctl.\"vm.max_map_count\"","settings.motd"]`, ""},
		{"DELETE", "/tx?tx=kp", "", 200, `[]`, ""},
		{"GET", "/settings?keys=settings.motd,settings.host-containers.custom.source", "", 200, `{"motd":"my own value!","host-containers":{"custom":{"source":"MY-CONTAINER-URI"}}}`, ""},
		{"GET", "/settings?keys=settings.host-containers", "", 200, `{"host-containers":{"custom":{"enabled":true,"source":"MY-CONTAINER-URI","superpowered":false}}}`, ""},
		{"GET", "/settings?keys=settings.nope", "", 200, `{}`, ""},
		{"GET", "/settings?prefix=host", "", 200, `{"host-containers":{"custom":{"enabled":true,"source":"MY-CONTAINER-URI","superpowered":false}}}`, ""},
		{"GET", "/settings?prefix=settings.mo", "", 200, `{"motd":"my own value!"}`, ""},
		{"GET", "/settings?prefix=zzz", "", 200, `{}`, ""},
	})
	if len(e.applier.calls) != 1 || strings.Join(e.applier.calls[0], ",") != "settings.motd" {
		t.Fatalf("applier calls = %v, want one with settings.motd", e.applier.calls)
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	e := newTestEnv(t, "metal-dev")
	big := `{"motd": "` + strings.Repeat("x", MaxBodyBytes) + `"}`
	e.run([]step{
		{"PATCH", "/settings", `{"motd": `, 400, "", "malformed JSON"},
		{"PATCH", "/settings", `{"motd": 5}`, 400, "", "settings.motd: expected a string"},
		{"PATCH", "/settings", `{"motd": "ok", "updates": {"seed": 99999}}`, 400, "", "settings.updates.seed"},
		{"PATCH", "/settings", `{"kernel": {"sysctl": {"bad key": "1"}}}`, 400, "", `settings.kernel.sysctl.bad key: invalid name`},
		{"PATCH", "/settings", `{"kubernetes": {}}`, 400, "", "unknown settings group for variant metal-dev"},
		{"PATCH", "/settings", `[]`, 400, "", "expected an object"},
		{"PATCH", "/settings", ``, 400, "", "body is empty"},
		{"PATCH", "/settings", big, 413, "", "larger than"},
		{"PATCH", "/settings?tx=bad%20name", `{"motd": "x"}`, 400, "", "Invalid input 'tx'"},
		{"PATCH", "/settings?tx=", `{"motd": "x"}`, 400, "", "transaction name is empty"},
		{"PATCH", "/settings/keypair", `{"request_payload": ["motd"]}`, 400, "", "motd: expected key=value"},
		{"PATCH", "/settings/keypair", `{"request_payload": ["updates.ignore-waves=maybe"]}`, 400, "", "settings.updates.ignore-waves"},
		{"PATCH", "/settings/keypair", `{"payload": ["motd=x"]}`, 400, "", "request_payload"},
		{"PATCH", "/settings/keypair", `{"request_payload": []}`, 400, "", "empty"},
		{"GET", "/settings?keys=", "", 400, "", "Input 'keys' cannot be empty"},
		{"GET", "/settings?keys=a..b", "", 400, "", "empty segment"},
		{"GET", "/settings?prefix=", "", 400, "", "Input 'prefix' cannot be empty"},
		{"GET", "/metadata/affected-services", "", 400, "", "Missing required input 'keys'"},
		{"GET", "/tx?tx=a/b", "", 400, "", "not allowed"},
		{"POST", "/tx/apply?keys=a.\"b", "", 400, "", "unbalanced quotes"},
		{"GET", "/tx/list", "", 200, `[]`, ""},
		{"GET", "/settings", "", 200, `{}`, ""},
	})
}

func TestModelAndSections(t *testing.T) {
	e := newTestEnv(t, "metal-dev")
	e.run([]step{{"GET", "/", "", 404, "", "Found no 'settings' in datastore"}})
	e.seedServices()
	e.seed(datastore.Live, map[string]string{"settings.motd": `"hi"`, "settings.network.hostname": `"node1"`, "settings.host-containers.admin.enabled": `true`})
	osJSON := `{"pretty_name":"Gantry 1.0.0","variant_id":"metal-dev","version_id":"1.0.0","build_id":"abc","arch":"x86_64"}`
	e.run([]step{
		{"GET", "/?prefix=settings.host", "", 200, `{"settings":{"host-containers":{"admin":{"enabled":true}}}}`, ""},
		{"GET", "/?prefix=settings.network.host", "", 200, `{"settings":{"network":{"hostname":"node1"}}}`, ""},
		{"GET", "/?prefix=se", "", 200, "", `"services"`},
		{"GET", "/?prefix=os", "", 200, `{"os":` + osJSON + `}`, ""},
		{"GET", "/?prefix=os.ver", "", 200, `{"os":{"version_id":"1.0.0"}}`, ""},
		{"GET", "/?prefix=nothing", "", 200, `{}`, ""},
		{"GET", "/", "", 200, "", `"configuration-files":{"chrony"`},
		{"GET", "/os", "", 200, osJSON, ""},
		{"GET", "/os?prefix=arch", "", 200, `{"arch":"x86_64"}`, ""},
		{"GET", "/os?prefix=os.pretty", "", 200, `{"pretty_name":"Gantry 1.0.0"}`, ""},
		{"GET", "/services?names=motd", "", 200, `{"motd":{"configuration-files":["motd"],"restart-commands":[]}}`, ""},
		{"GET", "/services?names=nope", "", 404, "", "Found no 'services.nope' in datastore"},
		{"GET", "/services?prefix=nt", "", 200, `{"ntp":{"configuration-files":["chrony"],"restart-commands":["/bin/true"]}}`, ""},
		{"GET", "/configuration-files?names=chrony", "", 200, `{"chrony":{"mode":"0600","path":"/etc/chrony.conf","template-path":"/t/chrony"}}`, ""},
		{"GET", "/configuration-files", "", 200, "", `"motd":{"path":"/etc/motd"`},
		{"GET", "/metadata/affected-services?keys=settings.motd,settings.ntp.time-servers,settings.dns", "", 200, `{"settings.motd":["motd"],"settings.ntp.time-servers":["ntp"]}`, ""},
		{"GET", "/metadata/templates?keys=settings.motd", "", 200, `{}`, ""},
		{"GET", "/metadata/setting-generators", "", 200, `{"settings.updates.seed":"bork seed"}`, ""},
		{"DELETE", "/settings", "", 405, "", ""},
		{"GET", "/nope", "", 404, "", ""},
	})
}

func TestApplyErrorsReachCaller(t *testing.T) {
	e := newTestEnv(t, "metal-dev")
	e.applier.err = errors.New("template motd: boom")
	e.run([]step{
		{"PATCH", "/settings", `{"motd": "x"}`, 204, "", ""},
		{"POST", "/tx/commit_and_apply", "", 500, "", "settings were committed, but applying them failed: apply: template motd: boom"},
		{"GET", "/settings", "", 200, `{"motd":"x"}`, ""},
		{"POST", "/tx/apply", "", 500, "", "boom"},
	})
	e.applier.err = nil
	e.run([]step{{"POST", "/tx/apply?keys=settings.motd", "", 204, "", ""}, {"POST", "/tx/apply", "", 204, "", ""}})
	calls := e.applier.calls
	if len(calls) != 4 || calls[1] != nil || strings.Join(calls[2], ",") != "settings.motd" || calls[3] != nil {
		t.Fatalf("applier calls = %q", calls)
	}
}

func TestGetSettingsCacheSeesCommits(t *testing.T) {
	e := newTestEnv(t, "metal-dev")
	for _, v := range []string{"a", "b", "c"} {
		e.run([]step{
			{"PATCH", "/settings", `{"motd": "` + v + `"}`, 204, "", ""},
			{"POST", "/tx/commit", "", 200, "", ""},
			{"GET", "/settings", "", 200, `{"motd":"` + v + `"}`, ""},
		})
	}
}

func TestConcurrentClients(t *testing.T) {
	e := newTestEnv(t, "metal-dev")
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			tx := "w" + string(rune('a'+w))
			for i := 0; i < 20; i++ {
				req, _ := http.NewRequest("PATCH", "http://localhost/settings?tx="+tx, strings.NewReader(`{"kernel":{"sysctl":{"w`+tx+`":"`+string(rune('0'+i%10))+`"}}}`))
				resp, err := e.client.Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				resp.Body.Close()
				resp, err = e.client.Post("http://localhost/tx/commit?tx="+tx, "", nil)
				if err != nil || resp.StatusCode != 200 {
					errs <- "commit failed"
					return
				}
				resp.Body.Close()
				if resp, err = e.client.Get("http://localhost/settings"); err == nil {
					resp.Body.Close()
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	_, body := e.do("GET", "/settings", "")
	var got struct {
		Kernel struct{ Sysctl map[string]string }
	}
	json.Unmarshal([]byte(body), &got)
	if len(got.Kernel.Sysctl) != 8 {
		t.Fatalf("want 8 workers' keys, got %v", got.Kernel.Sysctl)
	}
	for k, v := range got.Kernel.Sysctl {
		if v != "9" {
			t.Errorf("%s = %s, want the last value 9", k, v)
		}
	}
}

func TestListenSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	ctx := context.Background()
	ln, err := Listen(ctx, sock, os.Getgid())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, want 0660", fi.Mode().Perm())
	}
	if _, err := Listen(ctx, sock, -1); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second listener on a live socket: %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // leaves a stale socket file behind
	ln2, err := Listen(ctx, sock, -1)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln2.Close()
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	if _, err := Listen(ctx, filepath.Join(dir, "file"), -1); err == nil {
		t.Error("listening over a regular file succeeded")
	}
}
