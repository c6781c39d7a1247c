//go:build vm

package qemu

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/gantry-os/gantry/internal/imagebuild"
	"github.com/gantry-os/gantry/internal/testsupport"
	"github.com/gantry-os/gantry/pkg/apiclient"
)

// TestHostContainersInVM runs a custom host container, built by gantry
// container build and pushed to a real registry on the host, on the booted
// image. The node pulls it through settings.container-registry's mirror
// (ghcr.io → the registry at 10.0.2.2), the way gantry run does. The
// container (internal/containers/testdata/web) serves its persistent
// directory on port 8090, forwarded to the host. Checked: it runs from the
// user data; a new source restarts it on the new image; a container that
// exits is started again; disabling stops it; a source that does not exist
// and a registry that cannot be reached fail the commit with the reason
// while the API keeps answering; the persistent directory survives a
// reboot. Bootstrap commands run in name order; bootstrap containers in
// mode once run once and flip to off, in mode always every boot, and an
// essential one that fails stops the boot short of configured.target, on
// the console and in GET /containers/status.
func TestHostContainersInVM(t *testing.T) {
	bd, _ := vmImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	reg := testsupport.StartRegistry(t)
	src := testsupport.RepoRoot(t)
	epoch := int64(1700000000)
	repo := reg.Host + "/gantry-os/test-web"
	if _, err := imagebuild.BuildContainer(ctx, imagebuild.ContainerOptions{
		Dir: filepath.Join(src, "internal/containers/testdata/web"), Source: src, Out: t.TempDir(),
		LockFile: copyLock(t, filepath.Join(src, "internal/containers/testdata/web")), Epoch: &epoch, Push: []string{repo + ":v1"},
	}); err != nil {
		t.Fatal(err)
	}
	pushWithFile(t, repo+":v1", repo+":v2", "etc/web-version", "2\n")

	webPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	mirror := func(port int) string {
		return fmt.Sprintf("[[settings.container-registry.mirrors]]\nregistry = \"ghcr.io\"\nendpoint = [\"http://10.0.2.2:%d\"]\n", port)
	}
	ud := filepath.Join(t.TempDir(), "user-data.toml")
	script := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	os.WriteFile(ud, []byte(mirror(reg.Port)+`
[settings.host-containers.web]
source = "ghcr.io/gantry-os/test-web:v1"
enabled = true

[settings.bootstrap-commands.10-first]
commands = [["apiclient", "set", "motd=first"]]
mode = "always"

[settings.bootstrap-commands.20-second]
commands = [["apiclient", "set", "motd=second"], ["apiclient", "set", "metrics.send-metrics=false"]]
mode = "always"

[settings.bootstrap-containers.a-once]
source = "ghcr.io/gantry-os/test-web:v1"
mode = "once"
user-data = "`+script("echo once ran\n")+`"

[settings.bootstrap-containers.b-always]
source = "ghcr.io/gantry-os/test-web:v1"
mode = "always"
user-data = "`+script("/usr/local/bin/apiclient get settings.motd\n")+`"
`), 0o644)
	dir := vmRunDir(t, "hostctr")
	opts := Options{BuildDir: bd, RunDir: dir, UserData: ud, Fresh: true, StopTimeout: 30 * time.Second,
		Forwards: []Forward{{HostPort: webPort, GuestPort: 8090}}}
	n, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { n.Stop(context.Background()) }()
	start := time.Now()
	if err := n.WaitForAPI(ctx); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, tail(n.Console(), 60))
	}
	runs := waitWeb(ctx, t, n, webPort, "/runs", func(s string) bool { return strings.Count(s, "start") == 1 })
	t.Logf("host container serving %v after start (%q)", time.Since(start).Round(time.Millisecond), runs)
	if v := waitWeb(ctx, t, n, webPort, "/version", nil); v != "1\n" {
		t.Errorf("version %q, want 1", v)
	}

	api := apiclient.New(n.SocketPath())
	// The bootstrap commands ran in name order before the containers, which
	// see their result through apiclient.
	checkBootstrap(ctx, t, n, api, map[string]string{"a-once": "succeeded", "b-always": "succeeded"}, "")
	if got := getSetting(ctx, t, api, "settings.bootstrap-containers.a-once.mode"); got != "off" {
		t.Errorf("a-once's mode after its run: %q, want off", got)
	}
	if got := getSetting(ctx, t, api, "settings.motd"); got != "second" {
		t.Errorf("motd after the bootstrap commands: %q, want second", got)
	}
	if !strings.Contains(n.Console(), `"motd": "second"`) && !strings.Contains(n.Console(), `"motd":"second"`) {
		t.Errorf("b-always did not print the motd the commands set:\n%s", grepLines(n.Console(), "bootstrap"))
	}
	set := func(pairs ...string) error {
		t.Helper()
		t0 := time.Now()
		_, err := api.SetKeypairs(ctx, pairs)
		t.Logf("set %v: %v (%v)", pairs, err, time.Since(t0).Round(time.Millisecond))
		return err
	}

	// A new source: restarted on the new image.
	if err := set("host-containers.web.source=ghcr.io/gantry-os/test-web:v2"); err != nil {
		t.Fatal(err)
	}
	if v := waitWeb(ctx, t, n, webPort, "/version", func(s string) bool { return s == "2\n" }); v != "2\n" {
		t.Errorf("version after the source change %q, want 2", v)
	}

	// The container exits (its CGI kills its PID 1): systemd starts it
	// again.
	if _, _, err := webGet(ctx, webPort, "/cgi-bin/exit"); err != nil {
		t.Fatal(err)
	}
	waitWeb(ctx, t, n, webPort, "/runs", func(s string) bool { return strings.Count(s, "start") == 3 })

	// Disabled: stopped.
	if err := set("host-containers.web.enabled=false"); err != nil {
		t.Fatal(err)
	}
	if _, code, err := webGet(ctx, webPort, "/runs"); err == nil && code == http.StatusOK {
		t.Error("the disabled container still answers")
	}

	// A source that does not exist: the commit's apply fails, naming the
	// container and the registry's answer.
	err = set("host-containers.web.source=ghcr.io/gantry-os/missing:v1", "host-containers.web.enabled=true")
	if err == nil || !strings.Contains(err.Error(), "host-containers.web: did not start") || !strings.Contains(err.Error(), "not found") {
		t.Errorf("a missing image: %v", err)
	}
	// A registry that cannot be reached, for an image never pulled: the
	// pull's retries run out and the commit says why.
	dead, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	err = set(fmt.Sprintf("container-registry.mirrors=[{\"registry\":\"ghcr.io\",\"endpoint\":[\"http://10.0.2.2:%d\"]}]", dead),
		"host-containers.web.source=ghcr.io/gantry-os/test-web:v3")
	if err == nil || !strings.Contains(err.Error(), "host-containers.web: did not start") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("an unreachable registry: %v", err)
	}
	if _, err := api.Get(ctx, []string{"settings.motd"}); err != nil {
		t.Errorf("the API after the failed starts: %v", err)
	}
	if err := set(fmt.Sprintf("container-registry.mirrors=[{\"registry\":\"ghcr.io\",\"endpoint\":[\"http://10.0.2.2:%d\"]}]", reg.Port),
		"host-containers.web.source=ghcr.io/gantry-os/test-web:v1"); err != nil {
		t.Fatal(err)
	}
	before := waitWeb(ctx, t, n, webPort, "/version", func(s string) bool { return s == "1\n" })
	_ = before

	// An essential bootstrap container that fails, for the next boot.
	if err := set("bootstrap-containers.c-essential.source=ghcr.io/gantry-os/test-web:v1",
		"bootstrap-containers.c-essential.mode=always", "bootstrap-containers.c-essential.essential=true",
		"bootstrap-containers.c-essential.user-data="+script("exit 3\n")); err != nil {
		t.Fatal(err)
	}

	// A reboot: the container comes back by itself, and its persistent
	// directory kept every earlier start; a-once stays off, b-always runs
	// again, c-essential fails and holds the boot before configured.target
	// (host containers still start).
	runs, _, _ = webGet(ctx, webPort, "/runs")
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	opts.Fresh = false
	if n, err = Start(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitForAPI(ctx); err != nil {
		t.Fatalf("second boot: %v\nconsole:\n%s", err, tail(n.Console(), 60))
	}
	want := strings.Count(runs, "start") + 1
	waitWeb(ctx, t, n, webPort, "/runs", func(s string) bool { return strings.Count(s, "start") == want })
	checkBootstrap(ctx, t, n, apiclient.New(n.SocketPath()),
		map[string]string{"a-once": "skipped", "b-always": "succeeded", "c-essential": "failed"}, "c-essential")
	waitConsole(ctx, t, n, "bootstrap-containers: the boot stops here: essential bootstrap-containers c-essential failed")
}

// checkBootstrap waits for this boot's bootstrap-containers report in GET
// /containers/status and compares each container's state.
func checkBootstrap(ctx context.Context, t *testing.T, n *Node, api *apiclient.Client, want map[string]string, blocked string) {
	t.Helper()
	var doc struct {
		Commands *struct {
			Results []struct{ Name, State string }
		} `json:"bootstrap-commands"`
		Containers *struct {
			Blocked string
			Results []struct{ Name, State, Error string }
		} `json:"bootstrap-containers"`
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		body, err := api.Raw(ctx, http.MethodGet, "/containers/status", nil)
		if err == nil {
			err = json.Unmarshal(body, &doc)
		}
		if err == nil && doc.Containers != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no bootstrap report: %v\nconsole:\n%s", err, grepLines(n.Console(), "bootstrap"))
		}
		time.Sleep(time.Second)
	}
	got := map[string]string{}
	for _, r := range doc.Containers.Results {
		got[r.Name] = r.State
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || doc.Containers.Blocked != blocked {
		t.Errorf("bootstrap containers %v blocked %q, want %v %q\nconsole:\n%s", got, doc.Containers.Blocked, want, blocked,
			grepLines(n.Console(), "bootstrap"))
	}
	if doc.Commands == nil || len(doc.Commands.Results) != 2 || doc.Commands.Results[0].State != "succeeded" || doc.Commands.Results[1].State != "succeeded" {
		t.Errorf("bootstrap commands: %+v", doc.Commands)
	}
}

// getSetting reads one setting as a string.
func getSetting(ctx context.Context, t *testing.T, api *apiclient.Client, key string) string {
	t.Helper()
	doc, err := api.Get(ctx, []string{key})
	if err != nil {
		t.Fatal(err)
	}
	var v any = doc
	for _, seg := range strings.Split(key, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[seg]
	}
	return fmt.Sprint(v)
}

// waitWeb polls the container's web server until ok accepts the body (any
// 200 answer when ok is nil).
func waitWeb(ctx context.Context, t *testing.T, n *Node, port int, path string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		body, code, err := webGet(ctx, port, path)
		if err == nil && code == http.StatusOK && (ok == nil || ok(body)) {
			return body
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("GET %s: %q %d %v\nconsole:\n%s", path, body, code, err, grepLines(n.Console(), "host-co"))
		}
		time.Sleep(time.Second)
	}
}

func webGet(ctx context.Context, port int, path string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

// pushWithFile pushes the image at from, with one more layer holding file,
// to to.
func pushWithFile(t *testing.T, from, to, file, content string) {
	t.Helper()
	src, err := name.ParseReference(from, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(src)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: file, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(1700000000, 0)})
	io.WriteString(tw, content)
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		t.Fatal(err)
	}
	dst, err := name.ParseReference(to, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dst, img); err != nil {
		t.Fatal(err)
	}
}

// copyLock copies a folder's packages.lock to a test folder, so that a
// build never writes into the repository.
func copyLock(t *testing.T, dir string) string {
	t.Helper()
	lock := filepath.Join(t.TempDir(), imagebuild.LockFile)
	if data, err := os.ReadFile(filepath.Join(dir, imagebuild.LockFile)); err == nil {
		if err := os.WriteFile(lock, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return lock
}
