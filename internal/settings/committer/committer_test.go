package committer_test

import (
	"bytes"
	"context"
	"github.com/gantry-os/gantry/pkg/apiclient"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/apitest"
	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/internal/settings/committer"
)

func TestCommit(t *testing.T) {
	node := apitest.Start(t, "metal-dev")
	socket, api := node.Socket, node.API
	ctx := context.Background()
	stage := func(tx, doc string) {
		t.Helper()
		if _, err := api.Raw(ctx, http.MethodPatch, "/settings?tx="+tx, []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	stage(apiclient.LaunchTx, `{"motd": "from launch", "updates": {"seed": 7}}`)
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
