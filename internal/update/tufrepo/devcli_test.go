package tufrepo

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/cli"
)

// runRepo runs `repo ARGS...` in process and returns its exit code, stdout
// and stderr.
func runRepo(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	cmd := NewCommand()
	cmd.SetOut(&out)
	code := cli.Execute(ctx, cmd, args, &errb)
	return code, out.String(), errb.String()
}

// TestDevCommandLine: init --dev makes the repository once and keeps it
// after; add-release --key signs every role with the one key.
func TestDevCommandLine(t *testing.T) {
	ctx := context.Background()
	repo := filepath.Join(t.TempDir(), "repo")
	img := t.TempDir()
	for name, body := range map[string]string{"boot.img": "boot", "root.img": "root", "hash.img": "hash"} {
		writeFile(t, img, name, []byte(body))
	}
	key := DevKeyPath(repo)
	steps := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{name: "init --dev", args: []string{"init", "--dev", "--repo", repo},
			stdout: []string{"created development repository " + repo, "key  " + key, "root " + filepath.Join(repo, "metadata", "root.json")}},
		{name: "init --dev again", args: []string{"init", "--dev", "--repo", repo}, stdout: []string{"exists; kept as it is"}},
		{name: "init --dev with keys", args: []string{"init", "--dev", "--repo", repo, "--root-key", key}, code: 2, stderr: []string{"--dev makes its own key"}},
		{name: "add-release without keys", args: []string{"add-release", "--repo", repo, "--variant", "metal-dev", "--arch", "x86_64", "--version", "0.2.0",
			"--boot", filepath.Join(img, "boot.img"), "--root", filepath.Join(img, "root.img"), "--hash", filepath.Join(img, "hash.img")},
			code: 2, stderr: []string{"no targets key given (--targets-key or --key)"}},
		{name: "add-release --key", args: []string{"add-release", "--repo", repo, "--key", key, "--waves", "none",
			"--variant", "metal-dev", "--arch", "x86_64", "--version", "0.2.0",
			"--boot", filepath.Join(img, "boot.img"), "--root", filepath.Join(img, "root.img"), "--hash", filepath.Join(img, "hash.img")},
			stdout: []string{"added metal-dev x86_64 0.2.0", "timestamp  version 2"}},
		{name: "refresh --key", args: []string{"refresh", "--repo", repo, "--key", key}, stdout: []string{"timestamp  version 3"}},
		{name: "validate", args: []string{"validate", "--repo", repo}, stdout: []string{"metal-dev x86_64 0.2.0", "repository is valid"}},
	}
	for _, s := range steps {
		code, out, errs := runRepo(ctx, s.args...)
		if code != s.code {
			t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", s.name, code, s.code, out, errs)
		}
		for _, w := range s.stdout {
			if !strings.Contains(out, w) {
				t.Errorf("%s: stdout lacks %q:\n%s", s.name, w, out)
			}
		}
		for _, w := range s.stderr {
			if !strings.Contains(errs, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", s.name, w, errs)
			}
		}
	}
}

// TestServeCommand: serve answers with the repository's files, hides its
// key, and ends cleanly when its context does.
func TestServeCommand(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	ensureDev(t, repo, time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	cmd := NewCommand()
	cmd.SetOut(pw)
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- cli.Execute(ctx, cmd, []string{"serve", "--repo", repo, "--listen", "127.0.0.1:0"}, &errb)
		pw.Close()
	}()
	// The first lines name the URLs.
	sc := bufio.NewScanner(pr)
	var metadataURL string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "metadata  "); ok {
			metadataURL = u
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if metadataURL == "" {
		t.Fatalf("serve printed no metadata URL; stderr: %s", errb.String())
	}
	for _, tc := range []struct {
		path string
		code int
	}{
		{metadataURL + "root.json", http.StatusOK},
		{metadataURL + "1.root.json", http.StatusOK},
		{strings.Replace(metadataURL, "/metadata/", "/keys/dev", 1), http.StatusNotFound},
		{strings.Replace(metadataURL, "/metadata/", "/.gantry-repo.lock", 1), http.StatusNotFound},
	} {
		resp, err := http.Get(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.code)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d after its context ended: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not end with its context")
	}
	if code, _, errs := runRepo(context.Background(), "serve", "--repo", t.TempDir()); code != 1 || !strings.Contains(errs, "holds no repository") {
		t.Errorf("serve of an empty folder: exit %d: %s", code, errs)
	}
}
