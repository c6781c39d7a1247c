package qemu

import (
	"context"
	"github.com/gantry-os/gantry/pkg/version"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/update/tufrepo"
	"github.com/gantry-os/gantry/pkg/apiclient"
)

// fakeRelease makes dir an image build's output for release version: its
// build.json and small boot, root and hash images.
func fakeRelease(t *testing.T, dir, version string) {
	t.Helper()
	files := map[string]string{
		BuildSummary:   `{"variant": "metal-dev", "arch": "x86_64", "version": "` + version + `", "build_id": "abc"}`,
		BuildBootImage: "boot " + version, BuildRootImage: "root " + version, BuildHashImage: "hash " + version,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadBuildRelease(t *testing.T) {
	tests := []struct {
		name, summary string
		want          tufrepo.Release
		wantErr       string
	}{
		{name: "release", summary: `{"variant": "metal-dev", "arch": "x86_64", "version": "1.2.3", "kernel": "x"}`,
			want: tufrepo.Release{Variant: "metal-dev", Arch: "x86_64", Version: version.Semver{Major: 1, Minor: 2, Patch: 3}}},
		{name: "no build.json", wantErr: "no such file"},
		{name: "not JSON", summary: "{", wantErr: "build.json"},
		{name: "no variant", summary: `{"arch": "x86_64", "version": "1.2.3"}`, wantErr: "names no variant"},
		{name: "bad version", summary: `{"variant": "v", "arch": "x86_64", "version": "one"}`, wantErr: "version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.summary != "" {
				os.WriteFile(filepath.Join(dir, BuildSummary), []byte(tt.summary), 0o644)
			}
			rel, err := readBuildRelease(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Boot, tt.want.Root, tt.want.Hash = filepath.Join(dir, "boot.img"), filepath.Join(dir, "root.img"), filepath.Join(dir, "hash.img")
			if rel.Variant != tt.want.Variant || rel.Arch != tt.want.Arch || rel.Version != tt.want.Version ||
				rel.Boot != tt.want.Boot || rel.Root != tt.want.Root || rel.Hash != tt.want.Hash {
				t.Errorf("got %+v, want %+v", rel, tt.want)
			}
		})
	}
}

// TestListenRepo: the port recorded in the run directory is used again, so
// that a kept disk's settings stay right; a recorded port that is taken is
// an error only when the disk is kept.
func TestListenRepo(t *testing.T) {
	free := func(t *testing.T) int {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	taken := func(t *testing.T) int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln.Addr().(*net.TCPAddr).Port
	}
	const (
		anyPort = -1 // any port but the recorded one
		saved   = -2 // the recorded one
	)
	tests := []struct {
		name        string
		saved, flag func(t *testing.T) int // nil: none
		diskKept    bool
		want        int
		wantChanged bool
		wantErr     string
	}{
		{name: "first run: a free port", want: anyPort},
		{name: "the recorded port", saved: free, diskKept: true, want: saved},
		{name: "the recorded port, new disk", saved: free, want: saved},
		{name: "the flag's port", flag: free, want: -3},
		{name: "the flag's port over the recorded one", saved: free, flag: free, diskKept: true, want: -3, wantChanged: true},
		{name: "recorded port taken, disk kept", saved: taken, diskKept: true, wantErr: "start over with --fresh"},
		{name: "recorded port taken, new disk", saved: taken, want: anyPort, wantChanged: true},
		{name: "the flag's port taken", flag: taken, wantErr: "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{RunDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}
			savedPort, flagPort := 0, 0
			if tt.saved != nil {
				savedPort = tt.saved(t)
				os.WriteFile(filepath.Join(o.RunDir, RunRepoPort), []byte(strconv.Itoa(savedPort)+"\n"), 0o644)
			}
			if tt.flag != nil {
				flagPort = tt.flag(t)
				o.UpdateRepoPort = flagPort
			}
			ln, changed, err := listenRepo(o, tt.diskKept)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := ln.Addr().(*net.TCPAddr).Port
			switch tt.want {
			case saved:
				if got != savedPort {
					t.Errorf("port %d, want the recorded %d", got, savedPort)
				}
			case anyPort:
				if got == 0 || got == savedPort {
					t.Errorf("port %d (recorded %d)", got, savedPort)
				}
			default:
				if got != flagPort {
					t.Errorf("port %d, want the flag's %d", got, flagPort)
				}
			}
			if changed != tt.wantChanged {
				t.Errorf("changed %v, want %v", changed, tt.wantChanged)
			}
			if ln.Addr().(*net.TCPAddr).IP.String() != "127.0.0.1" {
				t.Errorf("listening on %s, not the loopback", ln.Addr())
			}
			b, _ := os.ReadFile(filepath.Join(o.RunDir, RunRepoPort))
			if strings.TrimSpace(string(b)) != strconv.Itoa(got) {
				t.Errorf("recorded %q, serving on %d", b, got)
			}
		})
	}
}

func TestRepoHints(t *testing.T) {
	base := UpdateRepo{Dir: "/r/repo", KeyPath: "/r/repo/keys/dev", Port: 4321, Variant: "metal-dev", Arch: "x86_64",
		Version: version.Semver{Minor: 1}, UserData: UserDataRepoAdded,
		Host:  RepoURLs{Metadata: "http://127.0.0.1:4321/metadata/", Targets: "http://127.0.0.1:4321/targets/"},
		Guest: RepoURLs{Metadata: "http://10.0.2.2:4321/metadata/", Targets: "http://10.0.2.2:4321/targets/"}}
	with := func(f func(*UpdateRepo)) *UpdateRepo { r := base; f(&r); return &r }
	tests := []struct {
		name       string
		repo       *UpdateRepo
		diskReused bool
		noRoot     bool
		want, not  []string
	}{
		{name: "none", repo: nil, not: []string{"Update repository"}},
		{name: "published", repo: with(func(r *UpdateRepo) { r.Published = true }),
			want: []string{"Update repository: /r/repo, the build's release metal-dev x86_64 0.1.0: published now", "http://10.0.2.2:4321/metadata/",
				"gantry repo add-release --repo /r/repo --key /r/repo/keys/dev"},
			not: []string{"does not trust", "own update repository", "port changed"}},
		{name: "offered already", repo: &base, want: []string{"offered already"}},
		{name: "an image without a root", repo: &base, noRoot: true, want: []string{"trusts no update repository, so update check answers 503: build with --root-json /r/repo/metadata/root.json"}},
		{name: "new repository", repo: with(func(r *UpdateRepo) { r.Created = true }), want: []string{"does not trust it: build with --root-json /r/repo/metadata/root.json"}},
		{name: "own repository", repo: with(func(r *UpdateRepo) { r.UserData = UserDataRepoOwn }), want: []string{"names its own update repository"}},
		{name: "no user data", repo: with(func(r *UpdateRepo) { r.UserData = UserDataRepoNone }), want: []string{"no user data"}},
		{name: "port changed, kept disk", repo: with(func(r *UpdateRepo) { r.PortChanged = true }), diskReused: true, want: []string{"port changed"}},
		{name: "port changed, new disk", repo: with(func(r *UpdateRepo) { r.PortChanged = true }), not: []string{"port changed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := repoHints(tt.repo, tt.diskReused, tt.noRoot)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(got, w) {
					t.Errorf("has %q:\n%s", w, got)
				}
			}
		})
	}
}

// TestNodeServesUpdateRepo starts a (fake) node with a local update
// repository, as gantry run does: the repository is made, holds the build's
// release, is served while the node runs with the URLs in the user data
// the guest gets, and stops with the node; a second run publishes nothing
// and serves on the same port.
func TestNodeServesUpdateRepo(t *testing.T) {
	o := fakeNode(t, nil)
	fakeRelease(t, o.BuildDir, "0.1.0")
	o.UpdateRepo = filepath.Join(o.RunDir, RunRepoDir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	n, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(ctx)
	r := n.UpdateRepo()
	if r == nil {
		t.Fatal("no update repository")
	}
	if !r.Created || !r.Published || r.UserData != UserDataRepoAdded || r.PortChanged {
		t.Errorf("first start: %+v", r)
	}
	if r.Variant != "metal-dev" || r.Arch != "x86_64" || r.Version.String() != "0.1.0" || r.Dir != o.UpdateRepo || r.KeyPath != tufrepo.DevKeyPath(o.UpdateRepo) {
		t.Errorf("release and paths: %+v", r)
	}
	port := strconv.Itoa(r.Port)
	if r.Guest.Metadata != "http://10.0.2.2:"+port+"/metadata/" || r.Guest.Targets != "http://10.0.2.2:"+port+"/targets/" ||
		r.Host.Metadata != "http://127.0.0.1:"+port+"/metadata/" {
		t.Errorf("URLs: %+v", r)
	}
	// The guest got user data that names the repository.
	if err := n.WaitForAPI(ctx); err != nil {
		t.Fatal(err)
	}
	if con := n.Console(); !strings.Contains(con, `motd = "fake"`) || !strings.Contains(con, `metadata-base-url = "`+r.Guest.Metadata+`"`) {
		t.Errorf("the guest's user data lacks the repository:\n%s", con)
	}
	// A node's TUF client, through the server, from the root an image
	// built with --root-json would hold, finds the release.
	rep, err := tufrepo.Validate(ctx, tufrepo.ValidateOptions{MetadataURL: r.Host.Metadata, TargetsURL: r.Host.Targets, TrustedRoot: r.RootPath()})
	if err != nil {
		t.Fatalf("validate the served repository: %v", err)
	}
	if rep.Manifest == nil || len(rep.Manifest.Updates) != 1 || rep.Manifest.Updates[0].Version.String() != "0.1.0" {
		t.Errorf("served manifest: %+v", rep.Manifest)
	}

	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	n.Wait()
	if resp, err := http.Get(r.Host.Metadata + "root.json"); err == nil {
		resp.Body.Close()
		t.Errorf("the repository is still served after the node stopped: %s", resp.Status)
	}

	n2, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Stop(ctx)
	r2 := n2.UpdateRepo()
	if r2.Created || r2.Published || r2.Port != r.Port || r2.PortChanged || !n2.DiskReused() {
		t.Errorf("second start: %+v (disk kept %v), want the same repository, port %d, nothing published", r2, n2.DiskReused(), r.Port)
	}
	if resp, err := http.Get(r2.Host.Metadata + "timestamp.json"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("second start: GET timestamp.json: %v", err)
	} else {
		resp.Body.Close()
	}
}

func TestResolveUpdateRepo(t *testing.T) {
	bd := buildDir(t, "gantry-metal-dev-x86_64-0.1.0-abc.img")
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "with the build directory", opts: Options{BuildDir: bd, UpdateRepo: "repo"}},
		{name: "without the build directory", opts: Options{Image: filepath.Join(bd, "gantry-metal-dev-x86_64-0.1.0-abc.img"), UpdateRepo: "repo"},
			wantErr: "needs the image's build directory"},
		{name: "port out of range", opts: Options{BuildDir: bd, UpdateRepo: "repo", UpdateRepoPort: 70000}, wantErr: "want 0-65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.RunDir = t.TempDir()
			o, err := tt.opts.resolve()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !filepath.IsAbs(o.UpdateRepo) {
				t.Errorf("update repository %q is not absolute", o.UpdateRepo)
			}
		})
	}
}

func TestUpdateRepoDir(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		flag string
		off  bool
		want string
	}{
		{name: "default", o: Options{BuildDir: "build/metal-dev", RunDir: "run/metal-dev"}, want: "run/metal-dev/repo"},
		{name: "the flag", o: Options{BuildDir: "build/metal-dev", RunDir: "run/metal-dev"}, flag: "/srv/repo", want: "/srv/repo"},
		{name: "off", o: Options{BuildDir: "build/metal-dev", RunDir: "run/metal-dev"}, flag: "/srv/repo", off: true},
		{name: "explicit files", o: Options{RunDir: "run/node", Image: "disk.img"}},
		{name: "an image other than the build's", o: Options{BuildDir: "build/metal-dev", RunDir: "run/metal-dev", Image: "disk.img"}},
		{name: "explicit files and the flag", o: Options{RunDir: "run/node", Image: "disk.img"}, flag: "repo", want: "repo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := updateRepoDir(tt.o, tt.flag, tt.off); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestWaitForSettings: it waits for a non-empty settings object, and stops
// at the context's end or when the VM exits.
func TestWaitForSettings(t *testing.T) {
	tests := []struct {
		name    string
		bodies  []string // answers in turn; the last repeats
		status  int
		exited  bool
		wantErr string
	}{
		{name: "committed at once", bodies: []string{`{"motd":"hi"}`}},
		{name: "committed after a while", bodies: []string{`{}`, `{}`, `{"updates":{"seed":3}}`}},
		{name: "never committed", bodies: []string{`{}`}, wantErr: "no settings committed yet"},
		{name: "an error status", bodies: []string{`{"error":"x"}`}, status: 500, wantErr: "status 500"},
		{name: "not an object", bodies: []string{`[1]`}, wantErr: "not a JSON object"},
		{name: "the VM exited", bodies: []string{`{}`}, exited: true, wantErr: "exited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(shortDir(t), "api.sock")
			ln, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			calls := 0
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/settings" {
					http.NotFound(w, r)
					return
				}
				b := tt.bodies[min(calls, len(tt.bodies)-1)]
				calls++
				if tt.status != 0 {
					w.WriteHeader(tt.status)
				}
				w.Write([]byte(b))
			})}
			go srv.Serve(ln)
			defer srv.Close()
			exited := make(chan struct{})
			if tt.exited {
				close(exited)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			err = waitForSettings(ctx, apiclient.New(sock), exited)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if calls != len(tt.bodies) {
				t.Errorf("%d reads, want %d", calls, len(tt.bodies))
			}
		})
	}
}
