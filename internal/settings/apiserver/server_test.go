package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gantry-os/gantry/internal/settings/applier"
	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/model"
	"github.com/gantry-os/gantry/pkg/osrelease"
)

// testEnv is a real server on a real Unix socket, with a client; every
// exchange is checked against docs/openapi.yaml.
type testEnv struct {
	t         *testing.T
	store     *datastore.Store
	socket    string
	client    *http.Client
	spec      *specValidator
	root      string // where the applier renders files and finds restart programs
	templates string
	srv       *Server
}

// jsonField returns a top-level string field of a JSON document.
func jsonField(doc, field string) string {
	var m map[string]any
	json.Unmarshal([]byte(doc), &m)
	s, _ := m[field].(string)
	return s
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
	root, templates := filepath.Join(dir, "root"), filepath.Join(dir, "templates")
	os.MkdirAll(templates, 0o755)
	app := applier.New(applier.Options{Root: root, TemplatesDir: templates, Runner: applier.ExecRunner{Root: root}})
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
	return &testEnv{t: t, store: store, socket: socket, client: client, spec: loadSpec(t), root: root, templates: templates, srv: srv}
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
		{"PATCH", "/settings?tx=FOO", `{"host-containers": {"custom": {"source": "registry.example.com/my-container:v1", "enabled": true, "superpowered": false}}}`, 204, "", ""},
		{"GET", "/tx?tx=FOO", "", 200, `{"host-containers":{"custom":{"enabled":true,"source":"registry.example.com/my-container:v1","superpowered":false}}}`, ""},
		{"GET", "/tx", "", 200, `{}`, ""},
		{"POST", "/tx/commit?tx=FOO", "", 200, `["settings.host-containers.custom.enabled","settings.host-containers.custom.source","settings.host-containers.custom.superpowered"]`, ""},
		{"PATCH", "/settings/keypair?tx=kp", `{"request_payload": ["motd=42", "kernel.sysctl.\"vm.max_map_count\"=262144"]}`, 204, "", ""},
		{"GET", "/tx?tx=kp", "", 200, `{"kernel":{"sysctl":{"vm.max_map_count":"262144"}},"motd":"42"}`, ""},
		{"DELETE", "/tx?tx=kp", "", 200, `["settings.kernel.sysctl.\"vm.max_map_count\"","settings.motd"]`, ""},
		{"DELETE", "/tx?tx=kp", "", 200, `[]`, ""},
		{"GET", "/settings?keys=settings.motd,settings.host-containers.custom.source", "", 200, `{"motd":"my own value!","host-containers":{"custom":{"source":"registry.example.com/my-container:v1"}}}`, ""},
		{"GET", "/settings?keys=settings.host-containers", "", 200, `{"host-containers":{"custom":{"enabled":true,"source":"registry.example.com/my-container:v1","superpowered":false}}}`, ""},
		{"GET", "/settings?keys=settings.nope", "", 200, `{}`, ""},
		{"GET", "/settings?prefix=host", "", 200, `{"host-containers":{"custom":{"enabled":true,"source":"registry.example.com/my-container:v1","superpowered":false}}}`, ""},
		{"GET", "/settings?prefix=settings.mo", "", 200, `{"motd":"my own value!"}`, ""},
		{"GET", "/settings?prefix=zzz", "", 200, `{}`, ""},
	})
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

// wireServices defines two services with templates and restart programs
// that log their CHANGED_SETTINGS to root/restarts.log.
func (e *testEnv) wireServices() {
	e.seedServices()
	os.WriteFile(filepath.Join(e.templates, "motd"), []byte("{{ .settings.motd }}\n"), 0o644)
	os.WriteFile(filepath.Join(e.templates, "chrony"), []byte("{{ range .settings.ntp.servers }}server {{ . }} iburst\n{{ end }}"), 0o644)
	e.seed(datastore.Live, map[string]string{
		"services.motd.restart-commands": `["/usr/bin/log-restart motd"]`,
		"services.ntp.restart-commands":  `["/usr/bin/log-restart ntp"]`,
	})
	bin := filepath.Join(e.root, "usr", "bin")
	os.MkdirAll(bin, 0o755)
	script := "#!/bin/sh\necho \"$1: $CHANGED_SETTINGS\" >> \"$GANTRY_ROOT/restarts.log\"\n"
	os.WriteFile(filepath.Join(bin, "log-restart"), []byte(script), 0o755)
}

func (e *testEnv) restarts() string {
	b, _ := os.ReadFile(filepath.Join(e.root, "restarts.log"))
	os.Remove(filepath.Join(e.root, "restarts.log"))
	return string(b)
}

func (e *testEnv) file(path string) string {
	b, err := os.ReadFile(filepath.Join(e.root, path))
	if err != nil {
		return "<missing>"
	}
	return string(b)
}

func TestApplyRendersOnlyAffected(t *testing.T) {
	e := newTestEnv(t, "metal-dev")
	e.wireServices()
	// ntp's template names a setting that does not exist yet: the motd change
	// must not touch it.
	e.run([]step{
		{"PATCH", "/settings", `{"motd": "hello"}`, 204, "", ""},
		{"POST", "/tx/commit_and_apply", "", 200, `["settings.motd"]`, ""},
	})
	if got := e.file("/etc/motd"); got != "hello\n" {
		t.Fatalf("/etc/motd = %q", got)
	}
	if got := e.file("/etc/chrony.conf"); got != "<missing>" {
		t.Fatalf("chrony.conf was rendered for a motd change: %q", got)
	}
	if got := e.restarts(); got != "motd: settings.motd\n" {
		t.Fatalf("restarts = %q", got)
	}
	fi, _ := os.Stat(filepath.Join(e.root, "etc", "motd"))
	if fi.Mode().Perm() != 0o644 {
		t.Fatalf("motd mode %v, want the default 0644", fi.Mode().Perm())
	}
	// apply with no keys renders and restarts everything (boot).
	e.run([]step{{"POST", "/tx/apply?keys=settings.motd", "", 204, "", ""}})
	if got := e.restarts(); got != "motd: settings.motd\n" {
		t.Fatalf("restarts after apply?keys = %q", got)
	}
}

func TestPlanShowsDiffWithoutChanging(t *testing.T) {
	e := newTestEnv(t, "metal-dev")
	e.wireServices()
	e.run([]step{
		{"PATCH", "/settings", `{"motd": "one"}`, 204, "", ""},
		{"POST", "/tx/commit_and_apply", "", 200, "", ""},
		{"PATCH", "/settings?tx=next", `{"motd": "two"}`, 204, "", ""},
	})
	e.restarts()
	status, body := e.do("GET", "/tx/plan?tx=next", "")
	if status != 200 {
		t.Fatalf("plan: %d %s", status, body)
	}
	var plan applier.Plan
	if err := json.Unmarshal([]byte(body), &plan); err != nil {
		t.Fatal(err)
	}
	if len(plan.Files) != 1 || plan.Files[0].Path != "/etc/motd" || !plan.Files[0].Changed ||
		!strings.Contains(plan.Files[0].Diff, "-one\n+two\n") {
		t.Fatalf("plan = %s", body)
	}
	if len(plan.Services) != 1 || plan.Services[0].Name != "motd" {
		t.Fatalf("plan services = %+v", plan.Services)
	}
	if e.file("/etc/motd") != "one\n" || e.restarts() != "" {
		t.Fatal("the plan changed the node")
	}
	e.run([]step{{"GET", "/tx?tx=next", "", 200, `{"motd":"two"}`, ""}, {"GET", "/tx/plan?tx=empty", "", 200, "", `"keys":[]`}})
}

func TestApplyErrorsReachCaller(t *testing.T) {
	e := newTestEnv(t, "metal-dev")
	e.wireServices()
	os.WriteFile(filepath.Join(e.templates, "motd"), []byte("{{ .settings.nope }}\n"), 0o644)
	e.run([]step{
		{"PATCH", "/settings", `{"motd": "x"}`, 204, "", ""},
		{"POST", "/tx/commit_and_apply", "", 500, "", "settings were committed, but applying them failed:\nfile motd (/etc/motd): render"},
		{"GET", "/settings", "", 200, `{"motd":"x"}`, ""},
	})
	if e.restarts() != "" {
		t.Fatal("motd restarted onto a broken file")
	}
	// A failing restart program is reported with its output; the file is written.
	os.WriteFile(filepath.Join(e.templates, "motd"), []byte("{{ .settings.motd }}\n"), 0o644)
	os.WriteFile(filepath.Join(e.root, "usr", "bin", "log-restart"), []byte("#!/bin/sh\necho boom >&2\nexit 3\n"), 0o755)
	_, body := e.do("POST", "/tx/apply?keys=settings.motd", "")
	if !strings.Contains(body, `service motd: restart command "/usr/bin/log-restart motd": exit status 3: boom`) {
		t.Fatalf("apply error = %q", body)
	}
	if e.file("/etc/motd") != "x\n" {
		t.Fatalf("motd not written: %q", e.file("/etc/motd"))
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
