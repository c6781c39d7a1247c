package committer_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/apiclient"
	"github.com/gantry-os/gantry/apiserver"
	"github.com/gantry-os/gantry/committer"
	"github.com/gantry-os/gantry/datastore"
	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/model"
	"github.com/gantry-os/gantry/osrelease"
	"github.com/gantry-os/gantry/storewolf"
)

// serve runs a real apiserver over a real datastore on a Unix socket.
func serve(t *testing.T) string {
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

func TestCommit(t *testing.T) {
	socket := serve(t)
	api := apiclient.New(socket)
	ctx := context.Background()
	stage := func(tx, doc string) {
		t.Helper()
		if _, err := api.Raw(ctx, http.MethodPatch, "/settings?tx="+tx, []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	stage(storewolf.LaunchTx, `{"motd": "from launch", "updates": {"seed": 7}}`)
	stage("other", `{"motd": "from other"}`)

	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stderr   string
		wantMotd string
	}{
		{"launch", nil, 0, "committed 2 settings from gantry-launch\n", "from launch"},
		{"nothing pending is success", nil, 0, "", "from launch"},
		{"named transaction", []string{"--transaction", "other"}, 0, "committed 1 settings from other\n", "from other"},
		{"arguments", []string{"extra"}, 2, `settings-committer: unknown command "extra"`, "from other"},
		{"empty transaction name", []string{"--transaction", ""}, 2, "--transaction: name the transaction", "from other"},
		{"unknown flag", []string{"--tx", "x"}, 2, "unknown flag: --tx", "from other"},
		{"no API", []string{"--socket-path", filepath.Join(t.TempDir(), "none.sock")}, 1,
			"settings-committer: commit transaction gantry-launch:", "from other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !strings.HasPrefix(strings.Join(args, " "), "--socket-path") {
				args = append([]string{"--socket-path", socket}, args...)
			}
			var errb bytes.Buffer
			code := cli.Execute(ctx, committer.NewCommand(), args, &errb)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, errb.String())
			}
			if tc.stderr == "" && errb.Len() > 0 || !strings.Contains(errb.String(), tc.stderr) {
				t.Errorf("stderr %q, want %q", errb.String(), tc.stderr)
			}
			body, err := api.Raw(ctx, http.MethodGet, "/settings", nil)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(body), `"motd":"`+tc.wantMotd+`"`) {
				t.Errorf("live settings %s, want motd %q", body, tc.wantMotd)
			}
		})
	}
}
