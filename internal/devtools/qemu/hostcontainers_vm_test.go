//go:build vm

package qemu

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/gantry-os/gantry/internal/devtools/registry"
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

	// Gantry's own images, pulled under the variant's default sources.
	publishGantryImages(ctx, t, reg, "control", "admin")
	webPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	controlPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	sshPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ud := filepath.Join(t.TempDir(), "user-data.toml")
	script := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	os.WriteFile(ud, []byte(mirrorTOML(reg.Port)+`
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
		Forwards: []Forward{{HostPort: webPort, GuestPort: 8090}, {HostPort: controlPort, GuestPort: 8443}, {HostPort: sshPort, GuestPort: 22}}}
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
	checkExec(ctx, t, n)
	checkControl(ctx, t, api, controlPort)
	checkAdmin(ctx, t, n, api, sshPort)
	// The bootstrap commands ran in name order before the containers, which
	// see their result through apiclient.
	checkBootstrap(ctx, t, n, api, map[string]string{"a-once": "succeeded", "b-always": "succeeded"}, "", 2)
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
		map[string]string{"a-once": "skipped", "b-always": "succeeded", "c-essential": "failed"}, "c-essential", 2)
	waitConsole(ctx, t, n, "bootstrap-containers: the boot stops here: essential bootstrap-containers c-essential failed")
}

// checkExec runs commands in the web container over GET /exec: the
// apiclient binary without a terminal (output, exit code as its own), and a
// terminal session through the client library (the shim's pty, its size).
func checkExec(ctx context.Context, t *testing.T, n *Node) {
	t.Helper()
	bin := testsupport.Build(t, filepath.Join(t.TempDir(), "apiclient"), "cmd/apiclient")
	cmd := exec.CommandContext(ctx, bin, "--socket-path", n.SocketPath(), "exec", "-T", "web",
		"/bin/busybox", "sh", "-c", "read x; echo got $x; cat /.bottlerocket/host-containers/current/version; exit 7")
	cmd.Stdin = strings.NewReader("input\n")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 || string(out) != "got input\n1\n" {
		t.Errorf("apiclient exec -T: %q, %v; want \"got input\\n1\\n\" and exit code 7", out, err)
	}
	var buf bytes.Buffer
	code, err := apiclient.New(n.SocketPath()).Exec(ctx, apiclient.ExecOptions{Target: "web", TTY: &apiclient.Size{Rows: 33, Cols: 111},
		Command: []string{"/bin/busybox", "sh", "-c", "/bin/busybox stty size; /bin/busybox tty"}, Stdout: &buf})
	if err != nil || code != 0 || !strings.Contains(buf.String(), "33 111") || !strings.Contains(buf.String(), "/dev/pts/") {
		t.Errorf("exec with a terminal: %d %v %q", code, err, buf.String())
	}
	if _, err := apiclient.New(n.SocketPath()).Exec(ctx, apiclient.ExecOptions{Target: "nothing", Command: []string{"true"}, Stdout: &buf}); err == nil ||
		!strings.Contains(err.Error(), `no container "nothing"`) {
		t.Errorf("exec in a missing container: %v", err)
	}
}

// adminKey makes an SSH key and the admin container's user data that
// authorizes it (JSON).
func adminKey(t *testing.T) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	ud, _ := json.Marshal(map[string]any{"ssh": map[string]any{"authorized-keys": []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))}}})
	return signer, ud
}

// checkAdmin enables the admin container (superpowered) with an SSH key in
// its user data, logs in over SSH, and checks that sheltie is a root shell
// in the host's namespaces (PID 1 is the host's systemd, the root is
// Gantry's), that apiclient works for the user, that the host keys survive
// a restart, and apiclient exec into it with and without a terminal.
func checkAdmin(ctx context.Context, t *testing.T, n *Node, api *apiclient.Client, port int) {
	t.Helper()
	signer, ud := adminKey(t)
	t0 := time.Now()
	if _, err := api.SetKeypairs(ctx, []string{"host-containers.admin.enabled=true",
		"host-containers.admin.user-data=" + base64.StdEncoding.EncodeToString(ud)}); err != nil {
		t.Fatalf("enable the admin container: %v", err)
	}
	t.Logf("admin container running %v after the commit began (image not cached)", time.Since(t0).Round(time.Millisecond))
	login := func() (*ssh.Client, ssh.PublicKey) {
		t.Helper()
		var hostKey ssh.PublicKey
		cfg := &ssh.ClientConfig{User: "ec2-user", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, Timeout: 10 * time.Second,
			HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error { hostKey = k; return nil }}
		var err error
		for try := 0; try < 30; try++ {
			var c *ssh.Client
			if c, err = ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg); err == nil {
				return c, hostKey
			}
			time.Sleep(time.Second)
		}
		t.Fatalf("ssh to the admin container: %v\nconsole:\n%s", err, grepLines(n.Console(), "admin"))
		return nil, nil
	}
	run := func(c *ssh.Client, cmd, stdin string) string {
		t.Helper()
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Stdin = strings.NewReader(stdin)
		out, err := s.CombinedOutput(cmd)
		if err != nil {
			t.Errorf("%s: %v\n%s", cmd, err, out)
		}
		return string(out)
	}
	c, key1 := login()
	if out := run(c, "id", ""); !strings.Contains(out, "uid=1000(ec2-user)") || !strings.Contains(out, "274(api)") {
		t.Errorf("id: %q", out)
	}
	out := run(c, "sudo sheltie", "read c < /proc/1/comm; echo pid1=$c; while read l; do case $l in ID=*) echo $l;; esac; done < /etc/os-release\n")
	if !strings.Contains(out, "pid1=systemd") || !strings.Contains(out, "ID=gantry") {
		t.Errorf("sheltie is not a shell on the host: %q", out)
	}
	// What host-containerd costs at rest (docs/PERFORMANCE.md): its
	// daemon's and its shims' resident memory, read in the host's PID
	// namespace, which a superpowered container shares.
	rss := run(c, `sudo bash -c 'for p in $(pgrep -f host-containerd); do echo "$(cat /proc/$p/comm) $(grep VmRSS /proc/$p/status)"; done'`, "")
	t.Logf("host-containerd resident memory, with the web and admin containers running:\n%s", rss)
	if !strings.Contains(rss, "containerd VmRSS") {
		t.Errorf("no host-containerd process found: %q", rss)
	}
	if out := run(c, "apiclient get settings.host-containers.admin.superpowered", ""); !strings.Contains(out, "true") {
		t.Errorf("apiclient in the admin container: %q", out)
	}
	c.Close()
	// A restart keeps the host keys (the persistent directory's etc/ssh).
	if _, err := api.SetKeypairs(ctx, []string{"host-containers.admin.enabled=false"}); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if _, err := api.SetKeypairs(ctx, []string{"host-containers.admin.enabled=true"}); err != nil {
		t.Fatal(err)
	}
	t.Logf("admin container running %v after the commit began (image cached)", time.Since(t0).Round(time.Millisecond))
	c, key2 := login()
	c.Close()
	if !bytes.Equal(key1.Marshal(), key2.Marshal()) {
		t.Error("the SSH host key changed across a restart")
	}
	bin := testsupport.Build(t, filepath.Join(t.TempDir(), "apiclient"), "cmd/apiclient")
	err := exec.CommandContext(ctx, bin, "--socket-path", n.SocketPath(), "exec", "admin", "bash", "-c", "exit 4").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Errorf("apiclient exec admin: %v, want exit code 4", err)
	}
	var buf bytes.Buffer
	code, err := api.Exec(ctx, apiclient.ExecOptions{Target: "admin", TTY: &apiclient.Size{Rows: 40, Cols: 120},
		Command: []string{"bash", "-c", "stty size; tty"}, Stdout: &buf})
	if err != nil || code != 0 || !strings.Contains(buf.String(), "40 120") || !strings.Contains(buf.String(), "/dev/pts/") {
		t.Errorf("apiclient exec admin with a terminal: %d %v %q", code, err, buf.String())
	}
	if _, err := api.SetKeypairs(ctx, []string{"host-containers.admin.enabled=false", "motd=second"}); err != nil {
		t.Fatal(err)
	}
}

// checkControl enables the control container with certificates made here,
// then drives the API over mutual TLS with the apiclient binary; a client
// without a certificate is refused.
func checkControl(ctx context.Context, t *testing.T, api *apiclient.Client, port int) {
	t.Helper()
	clients, servers := testsupport.NewCA(t, "clients"), testsupport.NewCA(t, "servers")
	now := time.Now()
	srvCert, srvKey := servers.Issue(t, "node", true, now.Add(-time.Minute), now.Add(time.Hour))
	ud, _ := json.Marshal(map[string]string{"server-certificate": srvCert, "server-key": srvKey, "client-ca": clients.PEM})
	if _, err := api.SetKeypairs(ctx, []string{"host-containers.control.enabled=true", "host-containers.control.user-data=" + base64.StdEncoding.EncodeToString(ud)}); err != nil {
		t.Fatalf("enable the control container: %v", err)
	}
	dir := t.TempDir()
	cert, key := clients.Issue(t, "operator", false, now.Add(-time.Minute), now.Add(time.Hour))
	for name, body := range map[string]string{"client.pem": cert, "client.key": key, "ca.pem": servers.PEM} {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600)
	}
	bin := testsupport.Build(t, filepath.Join(t.TempDir(), "apiclient"), "cmd/apiclient")
	remote := func(args ...string) (string, error) {
		base := []string{"--endpoint", fmt.Sprintf("https://127.0.0.1:%d", port), "--tls-cert", filepath.Join(dir, "client.pem"),
			"--tls-key", filepath.Join(dir, "client.key"), "--tls-ca", filepath.Join(dir, "ca.pem")}
		out, err := exec.CommandContext(ctx, bin, append(base, args...)...).CombinedOutput()
		return string(out), err
	}
	var out string
	var err error
	for try := 0; try < 30; try++ { // the server listens a moment after the container starts
		if out, err = remote("set", "motd=set over mutual TLS"); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		t.Fatalf("apiclient set over mTLS: %v\n%s", err, out)
	}
	if out, err = remote("get", "settings.motd"); err != nil || !strings.Contains(out, "set over mutual TLS") {
		t.Errorf("apiclient get over mTLS: %v\n%s", err, out)
	}
	noCert, err := apiclient.NewTLS(fmt.Sprintf("https://127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noCert.Get(ctx, []string{"settings.motd"}); err == nil {
		t.Error("a client without a certificate was served")
	}
	// A certificate of another CA and an expired one of the right CA are
	// refused by the node's TLS handshake too.
	stranger := testsupport.NewCA(t, "strangers")
	for name, pair := range map[string][2]string{
		"another CA": func() [2]string {
			c, k := stranger.Issue(t, "stranger", false, now.Add(-time.Minute), now.Add(time.Hour))
			return [2]string{c, k}
		}(),
		"an expired certificate": func() [2]string {
			c, k := clients.Issue(t, "former", false, now.Add(-2*time.Hour), now.Add(-time.Hour))
			return [2]string{c, k}
		}(),
	} {
		os.WriteFile(filepath.Join(dir, "client.pem"), []byte(pair[0]), 0o600)
		os.WriteFile(filepath.Join(dir, "client.key"), []byte(pair[1]), 0o600)
		if out, err := remote("get", "settings.motd"); err == nil {
			t.Errorf("a client with %s was served:\n%s", name, out)
		}
	}
	if _, err := api.SetKeypairs(ctx, []string{"host-containers.control.enabled=false", "motd=second"}); err != nil {
		t.Fatal(err)
	}
}

// checkBootstrap waits for this boot's bootstrap-containers report in GET
// /containers/status and compares each container's state, and checks that
// the given number of bootstrap commands ran and succeeded.
func checkBootstrap(ctx context.Context, t *testing.T, n *Node, api *apiclient.Client, want map[string]string, blocked string, commands int) {
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
	ok := doc.Commands != nil && len(doc.Commands.Results) == commands
	for i := 0; ok && i < commands; i++ {
		ok = doc.Commands.Results[i].State == "succeeded"
	}
	if !ok {
		t.Errorf("bootstrap commands: %+v, want %d that succeeded", doc.Commands, commands)
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

// publishGantryImages builds Gantry's images (containers/NAME) and
// publishes them to the registry the way gantry run does: built into
// <dir>/<name>/oci and pushed under gantry-os/ as the layouts name them
// (gantry-os/gantry-admin:v0.1.0), so the node pulls them through the mirror
// under the variant's default sources.
func publishGantryImages(ctx context.Context, t *testing.T, reg *registry.Registry, names ...string) {
	t.Helper()
	src := testsupport.RepoRoot(t)
	epoch := int64(1700000000)
	built := t.TempDir()
	for _, name := range names {
		dir := filepath.Join(src, "containers", name)
		if _, err := imagebuild.BuildContainer(ctx, imagebuild.ContainerOptions{
			Dir: dir, Source: src, Out: filepath.Join(built, name), Epoch: &epoch, LockFile: copyLock(t, dir),
		}); err != nil {
			t.Fatal(err)
		}
	}
	if pub, err := registry.PublishLayouts(ctx, built, reg.Host, "gantry-os"); err != nil || len(pub) != len(names) {
		t.Fatalf("publish %v: %v %v", names, pub, err)
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
