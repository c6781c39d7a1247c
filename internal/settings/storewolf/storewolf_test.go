package storewolf

import (
	"context"
	"encoding/json"
	"github.com/gantry-os/gantry/internal/testsupport"
	"github.com/gantry-os/gantry/pkg/apiclient"
	"github.com/gantry-os/gantry/pkg/version"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/model"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func populate(t *testing.T, base, defaultsDir string) (Result, error) {
	t.Helper()
	defaults, err := LoadDefaults(defaultsDir)
	if err != nil {
		return Result{}, err
	}
	m, _ := model.ForVariant("metal-dev")
	v, _ := version.Parse("1.2.3")
	return Populate(context.Background(), Options{Base: base, Version: v, Defaults: defaults, Model: m})
}

func TestLoadDefaultsMergesInOrder(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"10-a.toml": "[settings]\nmotd = \"a\"\n[settings.ntp]\ntime-servers = [\"x\", \"y\"]\noptions = [\"iburst\"]\n",
		"20-b.toml": "[settings]\nmotd = \"b\"\n[settings.ntp]\ntime-servers = [\"z\"]\n",
		"notes.txt": "ignored",
	})
	got, err := LoadDefaults(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := got["settings"].(map[string]any)
	ntp := s["ntp"].(map[string]any)
	if s["motd"] != "b" || len(ntp["time-servers"].([]any)) != 1 || ntp["options"] == nil {
		t.Fatalf("merged = %v", got)
	}
	bad := writeFiles(t, map[string]string{"1.toml": "[settings]\nmotd = \"a\"\n", "2.toml": "[settings.motd]\nx = 1\n"})
	if _, err := LoadDefaults(bad); err == nil || !strings.Contains(err.Error(), "settings.motd is a table in one file") {
		t.Fatalf("type mismatch: %v", err)
	}
	if _, err := LoadDefaults(t.TempDir()); err == nil {
		t.Fatal("empty directory accepted")
	}
}

func TestPopulateCreatesAndNeverOverwrites(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	defaults := writeFiles(t, map[string]string{"00.toml": `
[settings]
motd = "hello"
[settings.updates]
seed = 5
[metadata.settings.motd]
affected-services = ["motd"]
[metadata.settings.updates.seed]
setting-generator = "bork seed"
[services.motd]
configuration-files = ["motd"]
restart-commands = []
[configuration-files.motd]
path = "/etc/motd"
template-path = "/t/motd"
mode = "0644"
`})
	res, err := populate(t, base, defaults)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.LaunchKeys != 2 || res.LiveKeys != 5 || res.MetadataKeys != 2 {
		t.Fatalf("first run = %+v", res)
	}
	if v, _, err := datastore.CurrentVersion(base); err != nil || v.String() != "1.2.3" {
		t.Fatalf("current version %v %v", v, err)
	}
	store, err := datastore.Open(ctx, filepath.Join(base, "current"), datastore.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	launch, _ := store.GetPrefix(ctx, datastore.Pending(apiclient.LaunchTx), "")
	if string(launch["settings.motd"]) != `"hello"` || string(launch["settings.updates.seed"]) != "5" {
		t.Fatalf("launch tx = %v", launch)
	}
	live, _ := store.GetPrefix(ctx, datastore.Live, "")
	if _, ok := live["settings.motd"]; ok {
		t.Fatal("defaults went straight to live settings")
	}
	// A user's committed value must survive the next boot's storewolf, and
	// pending transactions must not.
	if _, err := store.Commit(ctx, apiclient.LaunchTx); err != nil {
		t.Fatal(err)
	}
	if err := store.Set(ctx, datastore.Live, map[datastore.Key]json.RawMessage{
		datastore.MustKey(datastore.DataKey, "settings.motd"):                 json.RawMessage(`"mine"`),
		datastore.MustKey(datastore.DataKey, "configuration-files.motd.mode"): json.RawMessage(`"0600"`),
	}); err != nil {
		t.Fatal(err)
	}
	store.Set(ctx, datastore.Pending("leftover"), map[datastore.Key]json.RawMessage{datastore.MustKey(datastore.DataKey, "settings.motd"): json.RawMessage(`"x"`)})
	store.Close()

	res, err = populate(t, base, defaults)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || res.LaunchKeys != 0 || res.LiveKeys != 0 || res.MetadataKeys != 0 {
		t.Fatalf("second run wrote something: %+v", res)
	}
	store, err = datastore.Open(ctx, filepath.Join(base, "current"), datastore.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	live, _ = store.GetPrefix(ctx, datastore.Live, "")
	if string(live["settings.motd"]) != `"mine"` || string(live["configuration-files.motd.mode"]) != `"0600"` {
		t.Fatalf("storewolf overwrote live values: %v", live)
	}
	if txs, _ := store.Transactions(ctx); len(txs) != 0 {
		t.Fatalf("pending transactions survived: %v", txs)
	}
}

func TestPopulateRejectsBadDefaultsWritingNothing(t *testing.T) {
	tests := []struct{ name, toml, want string }{
		{"unknown setting", "[settings]\nmotdd = \"x\"\n", "settings.motdd: unknown settings group"},
		{"bad value", "[settings.updates]\nseed = 99999\n", "settings.updates.seed"},
		{"bad service", "[services.motd]\nconfiguration-files = \"motd\"\n", "services.motd.configuration-files: expected a list"},
		{"bad mode", "[configuration-files.motd]\nmode = \"rw\"\n", "configuration-files.motd.mode"},
		{"bad metadata", "[metadata.settings.motd]\naffected-services = 3\n", "metadata must be a string or a list"},
		{"unknown table", "[nonsense]\nx = 1\n", "unknown top-level table [nonsense]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			_, err := populate(t, base, writeFiles(t, map[string]string{"00.toml": tt.toml}))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want containing %q", err, tt.want)
			}
			entries, _ := os.ReadDir(base)
			if len(entries) != 0 {
				t.Fatalf("bad defaults left %d entries in the datastore base", len(entries))
			}
		})
	}
}

func TestVariantDefaultsAreValid(t *testing.T) {
	for variant := range model.BuiltinVariants() {
		dir := testsupport.RepoPath(t, filepath.Join("variants", variant, "defaults.d"))
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("variant %s has no defaults.d: %v", variant, err)
		}
		t.Run(variant, func(t *testing.T) {
			defaults, err := LoadDefaults(dir)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := model.ForVariant(variant)
			v, _ := version.Parse("1.0.0")
			if _, err := Populate(context.Background(), Options{Base: t.TempDir(), Version: v, Defaults: defaults, Model: m}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
