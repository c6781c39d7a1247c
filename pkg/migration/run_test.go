package migration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/pkg/datastore"
)

// snapshot is everything in a datastore, in comparable form.
type snapshot struct {
	Live     kv
	Metadata md
	Pending  map[string]kv
}

func mustKey(t *testing.T, typ datastore.KeyType, s string) datastore.Key {
	t.Helper()
	k, err := datastore.ParseKey(typ, s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// writeStore creates a datastore in dir holding s.
func writeStore(t *testing.T, dir string, s snapshot) {
	t.Helper()
	ctx := context.Background()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := datastore.Open(ctx, dir, datastore.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pairs := func(d kv) map[datastore.Key]json.RawMessage {
		out := map[datastore.Key]json.RawMessage{}
		for k, v := range d {
			out[mustKey(t, datastore.DataKey, k)] = json.RawMessage(v)
		}
		return out
	}
	if err := st.Set(ctx, datastore.Live, pairs(s.Live)); err != nil {
		t.Fatal(err)
	}
	var entries []datastore.Metadata
	for k, names := range s.Metadata {
		for n, v := range names {
			entries = append(entries, datastore.Metadata{Key: mustKey(t, datastore.DataKey, k), Name: mustKey(t, datastore.MetaKey, n), Value: json.RawMessage(v)})
		}
	}
	if err := st.SetMetadata(ctx, entries); err != nil {
		t.Fatal(err)
	}
	for tx, d := range s.Pending {
		if err := st.Set(ctx, datastore.Pending(tx), pairs(d)); err != nil {
			t.Fatal(err)
		}
	}
}

// readStore reads everything in the datastore in dir.
func readStore(t *testing.T, dir string) snapshot {
	t.Helper()
	in, err := readAll(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot{Live: kv{}, Metadata: md{}, Pending: map[string]kv{}}
	s.Live, s.Metadata = fromData(&Data{Data: in.live, Metadata: in.metadata})
	for tx, d := range in.pending {
		s.Pending[tx], _ = fromData(&Data{Data: d})
	}
	return s
}

func sample() snapshot {
	live, meta := base()
	live[`os.arch`] = `"stored-by-someone"` // a stored key under an injected name survives
	return snapshot{Live: live, Metadata: meta, Pending: map[string]kv{
		"gantry-launch":     {"settings.motd": `"Welcome to Gantry!"`, "settings.ntp.options": `["iburst"]`},
		"apiclient-set-abc": {"settings.updates.version-lock": `"latest"`, "settings.dns.name-servers": `["1.1.1.1"]`},
		"empty":             {},
	}}
}

// recorder is a test migration: it records the os.* keys it saw and applies inner.
type recorder struct {
	inner Migration
	seen  []map[string]string
	fail  string // fail on the section whose data holds this key
}

func (r *recorder) record(d *Data) error {
	m := map[string]string{}
	for _, k := range injectedKeys() {
		if v, ok := d.String(k); ok {
			m[k] = v
		}
	}
	r.seen = append(r.seen, m)
	if _, ok := d.Data[r.fail]; ok && r.fail != "" {
		return errors.New("boom")
	}
	return nil
}

func (r *recorder) Forward(d *Data) error {
	if err := r.record(d); err != nil {
		return err
	}
	return r.inner.Forward(d)
}

func (r *recorder) Backward(d *Data) error {
	if err := r.record(d); err != nil {
		return err
	}
	return r.inner.Backward(d)
}

func writeRelease(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "os-release")
	body := "NAME=Gantry\nVARIANT_ID=metal-dev\nVERSION_ID=1.1.0\nBUILD_ID=abc\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src, mid, back := filepath.Join(dir, "v1.0.0_a"), filepath.Join(dir, "v1.1.0_b"), filepath.Join(dir, "v1.0.0_c")
	orig := sample()
	writeStore(t, src, orig)
	srcBytes, err := os.ReadFile(filepath.Join(src, datastore.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	rel := writeRelease(t, dir)
	m := &recorder{inner: Sequence{
		ReplaceTemplate{File: "motd", Old: "/usr/share/templates/motd", New: "/usr/share/templates/motd-v2"},
		ReplaceList{Setting: "settings.ntp.options", Old: []string{"iburst"}, New: []string{"iburst", "minpoll 4"}},
		RemoveMetadata{{Setting: "settings.metrics", Metadata: []string{"setting-generator"}}},
	}}

	var stderr bytes.Buffer
	if code := run(context.Background(), m, "migrate_test", []string{"--forward", "--source-datastore", src, "--target-datastore", mid, "--os-release", rel}, &stderr); code != 0 {
		t.Fatalf("forward: exit %d\n%s", code, stderr.String())
	}
	got := readStore(t, mid)
	want := sample()
	want.Live["configuration-files.motd.template-path"] = `"/usr/share/templates/motd-v2"`
	want.Live["settings.ntp.options"] = `["iburst","minpoll 4"]`
	want.Pending["gantry-launch"]["settings.ntp.options"] = `["iburst","minpoll 4"]`
	delete(want.Metadata["settings.metrics"], "setting-generator")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after forward:\n got %+v\nwant %+v", got, want)
	}
	// Every section saw the release's keys, and nothing injected was written.
	if len(m.seen) != 1+len(orig.Pending) {
		t.Errorf("migration ran on %d sections, want %d", len(m.seen), 1+len(orig.Pending))
	}
	for _, s := range m.seen {
		if s[OSVariantID] != "metal-dev" || s[OSVersionID] != "1.1.0" || s[OSArch] == "" || s[OSArch] == "stored-by-someone" {
			t.Errorf("migration saw os keys %v", s)
		}
	}
	for tx, d := range got.Pending {
		for k := range d {
			if strings.HasPrefix(k, "os.") {
				t.Errorf("pending %s holds injected key %s", tx, k)
			}
		}
	}

	stderr.Reset()
	if code := run(context.Background(), m, "migrate_test", []string{"--backward", "--source-datastore", mid, "--target-datastore", back, "--os-release", rel}, &stderr); code != 0 {
		t.Fatalf("backward: exit %d\n%s", code, stderr.String())
	}
	want = sample()
	delete(want.Metadata["settings.metrics"], "setting-generator") // RemoveMetadata does not restore
	if got := readStore(t, back); !reflect.DeepEqual(got, want) {
		t.Errorf("after backward:\n got %+v\nwant %+v", got, want)
	}
	if after, _ := os.ReadFile(filepath.Join(src, datastore.DBFile)); !bytes.Equal(after, srcBytes) {
		t.Error("the source datastore changed")
	}
}

func TestRunUsage(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeStore(t, src, sample())
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no direction", []string{"--source-datastore", src, "--target-datastore", dir + "/t"}, ExitUsage},
		{"both directions", []string{"--forward", "--backward", "--source-datastore", src, "--target-datastore", dir + "/t"}, ExitUsage},
		{"no source", []string{"--forward", "--target-datastore", dir + "/t"}, ExitUsage},
		{"no target", []string{"--backward", "--source-datastore", src}, ExitUsage},
		{"unknown flag", []string{"--forward", "--source-datastore", src, "--target-datastore", dir + "/t", "--bogus"}, ExitUsage},
		{"extra argument", []string{"--forward", "--source-datastore", src, "--target-datastore", dir + "/t", "extra"}, ExitUsage},
		{"help", []string{"-h"}, ExitOK},
		{"missing source", []string{"--forward", "--source-datastore", dir + "/nope", "--target-datastore", dir + "/t"}, ExitFailure},
		{"explicit release file missing", []string{"--forward", "--source-datastore", src, "--target-datastore", dir + "/t", "--os-release", dir + "/nope"}, ExitFailure},
		{"target is source", []string{"--forward", "--source-datastore", src, "--target-datastore", src}, ExitFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if got := run(context.Background(), NoOp{}, "migrate_test", tt.args, &stderr); got != tt.want {
				t.Errorf("exit %d, want %d\n%s", got, tt.want, stderr.String())
			}
			if _, err := os.Stat(filepath.Join(dir, "t", datastore.DBFile)); err == nil {
				t.Error("a target datastore was written")
			}
		})
	}
}

// TestRunFailures checks that failures exit 1, name the migration, the
// direction and the section, and leave no target datastore behind.
func TestRunFailures(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeStore(t, src, sample())
	existing := filepath.Join(dir, "existing")
	writeStore(t, existing, snapshot{Live: kv{"settings.motd": `"keep"`}})

	tests := []struct {
		name   string
		m      Migration
		dir    string
		target string
		want   []string
	}{
		{"migration fails on a pending transaction", &recorder{inner: NoOp{}, fail: "settings.dns.name-servers"}, "--forward", "",
			[]string{"migrate_test forward: on pending transaction apiclient-set-abc: boom"}},
		{"helper error", AddSettings{"bad..key"}, "--backward", "",
			[]string{"migrate_test backward", "on live data", "AddSettings", "bad..key"}},
		{"invalid key written", setKey{"settings.bad key", `1`}, "--forward", "",
			[]string{"migrate_test forward", "settings.bad key"}},
		{"invalid JSON written", setKey{"settings.x", `{`}, "--forward", "",
			[]string{"migrate_test forward", "not valid JSON"}},
		{"target holds a datastore", NoOp{}, "--forward", existing,
			[]string{"already holds a datastore"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.target
			if target == "" {
				target = filepath.Join(t.TempDir(), "target")
			}
			before, _ := os.ReadFile(filepath.Join(target, datastore.DBFile))
			var stderr bytes.Buffer
			code := run(context.Background(), tt.m, "migrate_test", []string{tt.dir, "--source-datastore", src, "--target-datastore", target}, &stderr)
			if code != ExitFailure {
				t.Fatalf("exit %d, want 1\n%s", code, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("message %q does not say %q", stderr.String(), w)
				}
			}
			after, _ := os.ReadFile(filepath.Join(target, datastore.DBFile))
			if !bytes.Equal(before, after) {
				t.Error("the target's datastore file changed or was left behind")
			}
		})
	}
	if got := readStore(t, existing); got.Live["settings.motd"] != `"keep"` {
		t.Errorf("existing target changed: %v", got.Live)
	}
}

// setKey is a migration that writes one key as is.
type setKey struct{ key, value string }

func (s setKey) Forward(d *Data) error  { d.Data[s.key] = json.RawMessage(s.value); return nil }
func (s setKey) Backward(d *Data) error { return s.Forward(d) }

func TestMigrateCanonicalizesKeys(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	writeStore(t, src, snapshot{Live: kv{"settings.a": `1`}})
	changes, err := Migrate(context.Background(), setKey{`settings."b"`, `2`}, Options{Direction: Forward, Source: src, Target: dst})
	if err != nil {
		t.Fatal(err)
	}
	if got := readStore(t, dst).Live; !reflect.DeepEqual(got, kv{"settings.a": `1`, "settings.b": `2`}) {
		t.Errorf("live = %v", got)
	}
	if len(changes) != 1 || changes[0].Added != 1 {
		t.Errorf("changes = %+v", changes)
	}

	// The same key under two spellings is refused.
	dst2 := filepath.Join(dir, "dst2")
	_, err = Migrate(context.Background(), setKey{`settings."a"`, `2`}, Options{Direction: Forward, Source: src, Target: dst2})
	if err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("err = %v, want a duplicate-key error", err)
	}
}

func TestMigrateCancelled(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	writeStore(t, src, sample())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Migrate(ctx, NoOp{}, Options{Direction: Forward, Source: src, Target: dst}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dst, datastore.DBFile)); err == nil {
		t.Error("a target datastore was written")
	}
}
