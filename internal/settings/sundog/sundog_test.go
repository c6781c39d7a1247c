package sundog_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/internal/settings/apiserver"
	"github.com/gantry-os/gantry/internal/settings/sundog"
	"github.com/gantry-os/gantry/pkg/apiclient"
	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/model"
	"github.com/gantry-os/gantry/pkg/osrelease"
)

// serve runs a real apiserver and returns a client and its store.
func serve(t *testing.T) (*apiclient.Client, *datastore.Store) {
	t.Helper()
	dir := t.TempDir()
	store, err := datastore.Open(context.Background(), dir, datastore.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := model.ForVariant("metal-k8s-1.37")
	ctx, cancel := context.WithCancel(context.Background())
	sock := filepath.Join(dir, "api.sock")
	ln, err := apiserver.Listen(ctx, sock, -1)
	if err != nil {
		t.Fatal(err)
	}
	srv := apiserver.New(apiserver.Config{Store: store, Model: m, Release: osrelease.Release{Arch: "x86_64"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; store.Close() })
	return apiclient.New(sock), store
}

// script writes an executable generator.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func generators(t *testing.T, store *datastore.Store, gens map[string]string) {
	t.Helper()
	var md []datastore.Metadata
	for k, cmd := range gens {
		v, _ := json.Marshal(cmd)
		md = append(md, datastore.Metadata{Key: datastore.MustKey(datastore.DataKey, k), Name: datastore.MustKey(datastore.MetaKey, "setting-generator"), Value: v})
	}
	if err := store.SetMetadata(context.Background(), md); err != nil {
		t.Fatal(err)
	}
}

func TestRunGeneratesOnlyMissing(t *testing.T) {
	client, store := serve(t)
	dir := t.TempDir()
	seed := script(t, dir, "seed", `echo 42`)
	host := script(t, dir, "host", `echo '"from-generator"'`)
	skip := script(t, dir, "skip", `exit 2`)
	proxy := script(t, dir, "proxy", `printf '"%s"' "$HTTPS_PROXY"`)
	generators(t, store, map[string]string{
		"settings.updates.seed":       seed,
		"settings.network.hostname":   host,
		"settings.kubernetes.node-ip": skip,
		"settings.motd":               proxy + " 'quoted arg'",
		"settings.boot":               script(t, dir, "never", `echo should-not-run; exit 1`),
	})
	ctx := context.Background()
	store.Set(ctx, datastore.Live, map[datastore.Key]json.RawMessage{
		datastore.MustKey(datastore.DataKey, "settings.network.https-proxy"):      json.RawMessage(`"http://proxy.example:3128"`),
		datastore.MustKey(datastore.DataKey, "settings.boot.reboot-to-reconcile"): json.RawMessage(`true`),
	})
	res, err := sundog.Run(ctx, sundog.Options{Client: client, Tx: "launch", Timeout: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"settings.updates.seed": "42", "settings.network.hostname": `"from-generator"`, "settings.motd": `"http://proxy.example:3128"`}
	got := map[string]string{}
	for k, v := range res.Generated {
		got[k] = string(v)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("generated %v, want %v", got, want)
	}
	body, _ := client.Raw(ctx, http.MethodGet, "/tx?tx=launch", nil)
	if string(body) != `{"motd":"http://proxy.example:3128","network":{"hostname":"from-generator"},"updates":{"seed":42}}` {
		t.Fatalf("launch tx = %s", body)
	}
	// A second boot with the values committed generates nothing.
	client.Raw(ctx, http.MethodPost, "/tx/commit?tx=launch", nil)
	res, err = sundog.Run(ctx, sundog.Options{Client: client, Tx: "launch", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil || len(res.Generated) != 0 {
		t.Fatalf("second run generated %v (%v)", res.Generated, err)
	}
}

func TestRunFailures(t *testing.T) {
	tests := []struct {
		name, body, want string
		timeout          time.Duration
	}{
		{"exit 1", `echo oops >&2; exit 1`, "exit status 1: oops", 0},
		{"not JSON", `echo not json`, "output is not JSON", 0},
		{"timeout", `sleep 5`, "timed out", 200 * time.Millisecond},
		{"invalid value", `echo 99999`, "expected an integer 0-2047", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, store := serve(t)
			generators(t, store, map[string]string{"settings.updates.seed": script(t, t.TempDir(), "gen", tt.body)})
			_, err := sundog.Run(context.Background(), sundog.Options{Client: client, Tx: "launch", Timeout: tt.timeout, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want containing %q", err, tt.want)
			}
			body, _ := client.Raw(context.Background(), http.MethodGet, "/tx?tx=launch", nil)
			if string(body) != "{}" {
				t.Fatalf("a failed run wrote %s", body)
			}
		})
	}
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"a b  c", []string{"a", "b", "c"}, false},
		{`schnauzer --template '{{ x }}/y'`, []string{"schnauzer", "--template", "{{ x }}/y"}, false},
		{`a "b \"c\" d" e\ f`, []string{"a", `b "c" d`, "e f"}, false},
		{`a''b`, []string{"ab"}, false},
		{`a 'b`, nil, true},
		{`a "b`, nil, true},
		{"", nil, false},
	}
	for _, tt := range tests {
		got, err := sundog.SplitCommand(tt.in)
		if (err != nil) != tt.err || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitCommand(%q) = %q, %v", tt.in, got, err)
		}
	}
}
