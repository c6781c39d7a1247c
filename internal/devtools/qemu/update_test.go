//go:build vm

package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/imagebuild"
	"github.com/gantry-os/gantry/internal/node/apiclient"
	"github.com/gantry-os/gantry/internal/testsupport"
	"github.com/gantry-os/gantry/internal/update/manifest"
	"github.com/gantry-os/gantry/internal/update/signpost"
	"github.com/gantry-os/gantry/internal/update/tufrepo"
	"github.com/gantry-os/gantry/pkg/version"
)

// TestUpdateAndRollbackInVM proves the image-based update end to end on a
// booted VM, with real components only: the development repository that
// gantry run serves (tufrepo.EnsureDev; Options.UpdateRepo) over HTTP on the
// host's loopback, two image builds (0.1.0 shipping the repository's
// root.json, and 0.2.0), and a node booted from 0.1.0's disk through gantry
// run's boot loader. Start publishes 0.1.0 and names the repository in the
// user data, so the node's first update check finds nothing newer. Then
// 0.2.0 is published; over the API bridge the node checks for the update,
// writes 0.2.0 into set B, and reboots into it. Then a broken
// 0.3.0 (its BOOT partition's root hash does not match its root, so
// dm-verity rejects the root and restarts the machine) is applied: the
// boot loader tries it once, and the next boot is back on 0.2.0.
//
// The guest reaches the host's 127.0.0.1 as 10.0.2.2 through QEMU's user
// network. Builds go to a temporary directory, or to GANTRY_VMUPDATE_CACHE
// when set: there the signing key and both builds are kept and reused by
// later runs (for iterating on the test; delete the folder after changing
// the image's sources). Run it under `flock /tmp/gantry-vm.lock`.
func TestUpdateAndRollbackInVM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two images and boots a VM four times")
	}
	testsupport.RequireTools(t, DefaultQEMU, DefaultDebugfs, "mkfs.ext4", "mkfs.erofs")
	// Below go test's default 10-minute limit, so a hang fails here with
	// the console rather than as a panic of the test binary.
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	began := time.Now()
	step := func(what string) { t.Logf("%6.1fs  %s", time.Since(began).Seconds(), what) }

	work := os.Getenv("GANTRY_VMUPDATE_CACHE")
	if work == "" {
		work = t.TempDir()
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}

	// The publisher: the development repository gantry run serves (one key
	// for every role), new for each run of the test. With the cache, the
	// key is kept and given to the new repository, so that the cached
	// builds trust it.
	keyPath := filepath.Join(work, "key")
	if _, err := os.Stat(keyPath); err != nil {
		if _, err := tufrepo.GenerateKey(keyPath); err != nil {
			t.Fatal(err)
		}
	}
	repoDir := filepath.Join(t.TempDir(), "repo")
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(tufrepo.DevKeyPath(repoDir)), 0o700)
	if err := os.WriteFile(tufrepo.DevKeyPath(repoDir), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	repo, err := tufrepo.EnsureDev(ctx, repoDir, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Both images trust the repository's root.json.
	v010, v020, v030 := version.Semver{Minor: 1}, version.Semver{Minor: 2}, version.Semver{Minor: 3}
	build := func(v version.Semver) string {
		out := filepath.Join(work, "build-"+v.String())
		if _, err := FindImage(out); err == nil {
			step("reusing the build of " + v.String() + " in " + out)
			return out
		}
		step("building " + v.String())
		res, err := imagebuild.Build(ctx, imagebuild.Options{
			VariantDir: testsupport.RepoPath(t, "variants/metal-dev"), Source: testsupport.RepoRoot(t), Out: out,
			Version: v.String(), RootJSON: repo.RootPath(),
		})
		if err != nil {
			t.Fatalf("build %s: %v", v, err)
		}
		step(fmt.Sprintf("built %s: root hash %s", v, res.RootHash[:16]))
		return out
	}
	b1, b2 := build(v010), build(v020)

	// The node learns the repository's URLs from gantry run: the user data
	// sets only the waves.
	ud := filepath.Join(t.TempDir(), "user-data.toml")
	os.WriteFile(ud, []byte("[settings.updates]\nignore-waves = true\n"), 0o644)

	dir, err := os.MkdirTemp("", "gvu") // short: the socket paths live here
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("run directory kept: %s", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	step("booting 0.1.0")
	// As gantry run does: it publishes the booted 0.1.0 into the
	// repository, serves it on the host's loopback (the guest's 10.0.2.2)
	// and adds its URLs to the user data.
	n, err := Start(ctx, Options{BuildDir: b1, RunDir: filepath.Join(dir, "run"), UserData: ud, Fresh: true, StopTimeout: 5 * time.Second,
		UpdateRepo: repoDir})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(context.Background())
	if r := n.UpdateRepo(); r == nil || !r.Published || r.Created || r.UserData != UserDataRepoAdded || r.Version != v010 {
		t.Fatalf("update repository: %+v", r)
	}
	apiclientRun := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := apiclient.Main(ctx, append([]string{"--socket-path", n.SocketPath()}, args...), apiclient.IO{In: strings.NewReader(""), Out: &out, Err: &errb})
		return code, out.String(), errb.String()
	}
	api := func(args ...string) string {
		t.Helper()
		code, out, errs := apiclientRun(args...)
		if code != 0 {
			t.Fatalf("apiclient %s: exit %d: %s\nconsole:\n%s", strings.Join(args, " "), code, errs, tail(n.Console(), 40))
		}
		return out
	}
	up := func(wantVersion string, wantSet disklayout.SetID) {
		t.Helper()
		if err := n.WaitForAPI(ctx); err != nil {
			t.Fatal(err)
		}
		var rel struct {
			VersionID string `json:"version_id"`
		}
		json.Unmarshal([]byte(api("-u", "/os")), &rel)
		if b := n.Boot(); rel.VersionID != wantVersion || b.Set != wantSet {
			t.Fatalf("boot %d: running %q from set %s, want %s from set %s\nconsole:\n%s", b.N, rel.VersionID, b.Set, wantVersion, wantSet, tail(n.Console(), 40))
		}
		step(fmt.Sprintf("API up: %s from set %s (%s)", wantVersion, wantSet, n.Boot()))
	}
	// rebootTo reboots the node through the API and waits for boot number
	// want, which the boot loader starts.
	rebootTo := func(want int) {
		t.Helper()
		// The guest may go down before the answer gets out (the apiserver
		// is stopped as the reboot starts): the boot count is the proof.
		if code, _, errs := apiclientRun("reboot"); code != 0 && !strings.Contains(errs, "EOF") && !strings.Contains(errs, "connection reset") {
			t.Fatalf("apiclient reboot: exit %d: %s", code, errs)
		}
		for n.Boot().N < want {
			select {
			case <-n.Exited():
				t.Fatalf("the node ended instead of rebooting (%v)\nconsole:\n%s", n.Wait(), tail(n.Console(), 40))
			case <-ctx.Done():
				t.Fatalf("no boot %d: the node is at %s\nconsole:\n%s", want, n.Boot(), tail(n.Console(), 40))
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	// flags waits until the node's disk shows a and b (the guest writes
	// the GPT through its page cache, then signpost fsyncs).
	flags := func(a, b signpost.Prio) {
		t.Helper()
		var st *signpost.State
		for {
			st, err = signpost.Load(n.DiskPath(), "")
			if err == nil && st.Prio(disklayout.SetA) == a && st.Prio(disklayout.SetB) == b {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("the disk's flags never became A %s, B %s: %v, A %s, B %s", a, b, err, st.Prio(disklayout.SetA), st.Prio(disklayout.SetB))
			}
			time.Sleep(time.Second)
		}
	}
	// check refreshes the update status (it starts over at each boot: it
	// lives on tmpfs) and returns it.
	check := func() updateStatus {
		t.Helper()
		out := api("update", "check")
		var st updateStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("update check: %v:\n%s", err, out)
		}
		return st
	}

	up("0.1.0", disklayout.SetA)
	// As gantry run does before its hints: wait for the first boot to
	// commit the settings, user data included.
	if err := n.WaitForSettings(ctx); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, tail(n.Console(), 40))
	}
	var settings struct {
		Updates map[string]any `json:"updates"`
	}
	json.Unmarshal([]byte(api("-u", "/settings?keys=settings.updates")), &settings)
	if r := n.UpdateRepo(); settings.Updates[MetadataURLKey] != r.Guest.Metadata || settings.Updates[TargetsURLKey] != r.Guest.Targets ||
		settings.Updates["ignore-waves"] != true {
		t.Fatalf("settings.updates: %v, want the repository's %+v and the user data's ignore-waves", settings.Updates, r.Guest)
	}

	// The repository holds the running release only: no update.
	if st := check(); st.UpdateState != "Idle" || st.ChosenUpdate != nil || strings.Join(st.AvailableUpdates, ",") != "0.1.0" {
		t.Fatalf("update check with only 0.1.0 published: %+v", st)
	}
	if code, out, errs := apiclientRun("update", "apply", "--check"); code != 0 || strings.TrimSpace(errs) != "No updates available." || out != "" {
		t.Fatalf("update apply --check with only 0.1.0 published: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	step("update check: no update available")

	// The node's own network (DHCP, no help from the bridge) reached the
	// repository on the host (10.0.2.2). Names resolve through 10.0.2.3,
	// the name server QEMU's DHCP gave: an unknown name fails with that
	// server's answer.
	r := n.UpdateRepo()
	api("set", "updates.metadata-base-url=http://gantry-dns-check.invalid/metadata/")
	if code, _, errs := apiclientRun("update", "check"); code == 0 || !strings.Contains(errs, "lookup gantry-dns-check.invalid on 10.0.2.3:53: no such host") {
		t.Fatalf("update check with an unknown host name: exit %d, %s", code, errs)
	}
	api("set", "updates.metadata-base-url="+r.Guest.Metadata)
	// settings.network.https-proxy: updog goes through it (the proxy on
	// the host's loopback is the guest's 10.0.2.2), fails when it is down,
	// and goes around it for a no-proxy host.
	proxy := startForwardProxy(t)
	api("set", fmt.Sprintf("network.https-proxy=http://10.0.2.2:%d", proxy.port))
	if st := check(); st.UpdateState != "Idle" || !proxy.saw(r.Guest.Metadata+"timestamp.json") || !proxy.saw("/targets/") {
		t.Fatalf("update check through the proxy: %+v; the proxy saw %v", st, proxy.all())
	}
	api("set", "network.https-proxy=http://10.0.2.2:1")
	if code, _, errs := apiclientRun("update", "check"); code == 0 || !strings.Contains(errs, "proxyconnect") {
		t.Fatalf("update check through a proxy that is down: exit %d, %s", code, errs)
	}
	api("set", `network.no-proxy=["10.0.2.2"]`)
	seen := proxy.count()
	if st := check(); st.UpdateState != "Idle" || proxy.count() != seen {
		t.Fatalf("update check with the repository in no-proxy: %+v, proxy requests %d → %d", st, seen, proxy.count())
	}
	step("network: DHCP, names through 10.0.2.3, the proxy and no-proxy")

	// 0.2.0 is published, with no migration between the two.
	if _, err := repo.AddRelease(ctx, tufrepo.Release{Variant: "metal-dev", Arch: "x86_64", Version: v020,
		Boot: filepath.Join(b2, "boot.img"), Root: filepath.Join(b2, "root.img"), Hash: filepath.Join(b2, "hash.img"),
		Transitions: map[manifest.Transition][]string{{From: v010, To: v020}: {}}}); err != nil {
		t.Fatal(err)
	}

	// 0.1.0 → 0.2.0 with apiclient's helpers.
	if st := check(); st.UpdateState != "Available" || st.ChosenUpdate == nil || st.ChosenUpdate.Version != "0.2.0" {
		t.Fatalf("update check: %+v", st)
	}
	step("update check: 0.2.0 available")
	if out := api("update", "apply"); !strings.Contains(out, `"update_state": "Ready"`) {
		t.Fatalf("update apply:\n%s", out)
	}
	step("update apply: 0.2.0 written to set B and activated")
	flags(prio(1, 0, true), prio(2, 1, false))
	rebootTo(2)
	up("0.2.0", disklayout.SetB)
	if st := check(); st.UpdateState != "Idle" || st.ActivePartition == nil || st.ActivePartition.Image.Version != "0.2.0" || !st.ActivePartition.NextToBoot {
		t.Fatalf("update status after the update: %+v", st)
	}
	// mark-successful-boot ran on B: it stays the boot set.
	flags(prio(1, 0, true), prio(2, 0, true))
	step("0.2.0 marked successful")

	// A release that cannot boot: 0.1.0's BOOT (its kernel command line
	// carries 0.1.0's root hash) with 0.2.0's root. TUF signs it as it is.
	if _, err := repo.AddRelease(ctx, tufrepo.Release{Variant: "metal-dev", Arch: "x86_64", Version: v030,
		Boot: filepath.Join(b1, "boot.img"), Root: filepath.Join(b2, "root.img"), Hash: filepath.Join(b2, "hash.img"),
		Transitions: map[manifest.Transition][]string{{From: v020, To: v030}: {}}}); err != nil {
		t.Fatal(err)
	}
	if st := check(); st.ChosenUpdate == nil || st.ChosenUpdate.Version != "0.3.0" {
		t.Fatalf("update check for 0.3.0: %+v", st)
	}
	api("update", "apply")
	step("update apply: the broken 0.3.0 written to set A and activated")
	flags(prio(2, 1, false), prio(1, 0, true))
	rebootTo(4) // boot 3 is 0.3.0's one try, boot 4 the fallback
	up("0.2.0", disklayout.SetB)
	con := n.Console()
	if !strings.Contains(con, "gantry run: boot loader: boot 3: set A") || !strings.Contains(con, "corrupted") {
		t.Fatalf("boot 3 was not 0.3.0 failing dm-verity:\n%s", tail(con, 60))
	}
	// A's try is spent and it never succeeded; B is still the good set.
	flags(prio(2, 0, false), prio(1, 0, true))
	// The broken release is still offered; the node runs 0.2.0.
	if st := check(); st.ActivePartition == nil || st.ActivePartition.Image.Version != "0.2.0" {
		t.Fatalf("update status after the rollback: %+v", st)
	}
	step("rolled back to 0.2.0")

	if err := n.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// updateStatus is the part of GET /updates/status the test reads.
type updateStatus struct {
	UpdateState      string   `json:"update_state"`
	AvailableUpdates []string `json:"available_updates"`
	ChosenUpdate     *struct {
		Version string `json:"version"`
	} `json:"chosen_update"`
	ActivePartition *struct {
		Image struct {
			Version string `json:"version"`
		} `json:"image"`
		NextToBoot bool `json:"next_to_boot"`
	} `json:"active_partition"`
}

// forwardProxy is an HTTP forward proxy on the host's loopback that
// records the URLs it is asked for; the guest's 10.0.2.2 is the host's
// 127.0.0.1.
type forwardProxy struct {
	port int
	mu   sync.Mutex
	urls []string
}

func startForwardProxy(t *testing.T) *forwardProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &forwardProxy{port: ln.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		p.urls = append(p.urls, r.URL.String())
		p.mu.Unlock()
		u := *r.URL
		if u.Hostname() == "10.0.2.2" {
			u.Host = net.JoinHostPort("127.0.0.1", u.Port())
		}
		out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

func (p *forwardProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.urls)
}

func (p *forwardProxy) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.urls...)
}

// saw reports whether a URL it was asked for contains s.
func (p *forwardProxy) saw(s string) bool {
	for _, u := range p.all() {
		if strings.Contains(u, s) {
			return true
		}
	}
	return false
}
