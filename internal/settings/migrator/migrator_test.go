package migrator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/internal/testsupport"
	"github.com/gantry-os/gantry/pkg/version"
	"github.com/klauspost/compress/zstd"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-os/gantry/pkg/datastore"
)

// The binaries the tests run, built once per test binary.
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Names of the migrations as the manifests list them.
const (
	motdTemplate = "migrate_v1.1.0_replace-motd-template"
	ntpOptions   = "migrate_v1.1.0_ntp-default-options"
	ntpMaxSrc    = "migrate_v1.1.0_add-ntp-max-sources"
	testFail     = "migrate_test_fail"
	testSleep    = "migrate_test_sleep"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binaries builds cmd/migrator into <dir>/migrator and the migrations into
// <dir>/migrations/<name>, and returns dir.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "migrator-test-")
		if buildErr != nil {
			return
		}
		pkgs := map[string]string{
			"migrator":                   "github.com/gantry-os/gantry/cmd/migrator",
			"migrations/" + motdTemplate: "github.com/gantry-os/gantry/migrations/v1.1.0/replace-motd-template",
			"migrations/" + ntpOptions:   "github.com/gantry-os/gantry/migrations/v1.1.0/ntp-default-options",
			"migrations/" + ntpMaxSrc:    "github.com/gantry-os/gantry/migrations/v1.1.0/add-ntp-max-sources",
			"migrations/" + testFail:     "./testdata/fail",
			"migrations/" + testSleep:    "./testdata/sleep",
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for out, pkg := range pkgs {
			wg.Go(func() {
				if err := testsupport.GoBuild(context.Background(), filepath.Join(buildDir, out), pkg); err != nil {
					mu.Lock()
					buildErr = errors.Join(buildErr, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// snapshot is everything in a datastore, in comparable form.
type snapshot struct {
	Live     map[string]string
	Metadata map[string]string // "<data key> <metadata name>" → value
	Pending  map[string]map[string]string
}

func key(t *testing.T, typ datastore.KeyType, s string) datastore.Key {
	t.Helper()
	k, err := datastore.ParseKey(typ, s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pairs(t *testing.T, kv map[string]string) map[datastore.Key]json.RawMessage {
	t.Helper()
	out := map[datastore.Key]json.RawMessage{}
	for k, v := range kv {
		out[key(t, datastore.DataKey, k)] = json.RawMessage(v)
	}
	return out
}

// write adds s to the datastore in dir, creating it if need be.
func write(t *testing.T, dir string, s snapshot) {
	t.Helper()
	ctx := context.Background()
	st, err := datastore.Open(ctx, dir, datastore.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Set(ctx, datastore.Live, pairs(t, s.Live)); err != nil {
		t.Fatal(err)
	}
	var md []datastore.Metadata
	for km, v := range s.Metadata {
		k, name, _ := strings.Cut(km, " ")
		md = append(md, datastore.Metadata{Key: key(t, datastore.DataKey, k), Name: key(t, datastore.MetaKey, name), Value: json.RawMessage(v)})
	}
	if err := st.SetMetadata(ctx, md); err != nil {
		t.Fatal(err)
	}
	for tx, kv := range s.Pending {
		if err := st.Set(ctx, datastore.Pending(tx), pairs(t, kv)); err != nil {
			t.Fatal(err)
		}
	}
}

// read returns everything in the datastore in dir.
func read(t *testing.T, dir string) snapshot {
	t.Helper()
	ctx := context.Background()
	st, err := datastore.Open(ctx, dir, datastore.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := snapshot{Live: map[string]string{}, Metadata: map[string]string{}, Pending: map[string]map[string]string{}}
	strs := func(m map[string]json.RawMessage) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = string(v)
		}
		return out
	}
	live, err := st.GetPrefix(ctx, datastore.Live, "")
	if err != nil {
		t.Fatal(err)
	}
	s.Live = strs(live)
	md, err := st.AllMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range md {
		s.Metadata[m.Key.Name()+" "+m.Name.Name()] = string(m.Value)
	}
	txs, err := st.Transactions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range txs {
		p, err := st.GetPrefix(ctx, datastore.Pending(tx), "")
		if err != nil {
			t.Fatal(err)
		}
		s.Pending[tx] = strs(p)
	}
	return s
}

// storewolfLike is a v1.0.0 metal-dev datastore after first boot: committed
// settings, metadata, services and configuration files in live, the launch
// transaction still pending, and a user's uncommitted change.
func storewolfLike() snapshot {
	return snapshot{
		Live: map[string]string{
			"settings.motd":                                 `"Welcome to Gantry!"`,
			"settings.updates.version-lock":                 `"latest"`,
			"settings.updates.ignore-waves":                 `false`,
			"settings.ntp.time-servers":                     `["2.pool.ntp.org"]`,
			"settings.ntp.options":                          `["iburst"]`,
			"settings.metrics.send-metrics":                 `false`,
			"settings.kernel.lockdown":                      `"none"`,
			`settings.kernel.sysctl."vm.max_map_count"`:     `"262144"`,
			"services.motd.configuration-files":             `["motd"]`,
			"services.motd.restart-commands":                `[]`,
			"services.ntp.configuration-files":              `["chrony-conf"]`,
			"services.ntp.restart-commands":                 `["/usr/bin/systemctl try-reload-or-restart chrony.service"]`,
			"configuration-files.motd.path":                 `"/etc/motd"`,
			"configuration-files.motd.template-path":        `"/usr/share/templates/motd"`,
			"configuration-files.chrony-conf.path":          `"/etc/chrony/chrony.conf"`,
			"configuration-files.chrony-conf.template-path": `"/usr/share/templates/chrony-conf"`,
		},
		Metadata: map[string]string{
			"settings.motd affected-services":             `["motd"]`,
			"settings.ntp affected-services":              `["ntp"]`,
			"settings.kernel.sysctl affected-services":    `["sysctl"]`,
			"settings.network.hostname affected-services": `["hostname"]`,
		},
		Pending: map[string]map[string]string{
			"gantry-launch": {
				"settings.motd":        `"Welcome to Gantry!"`,
				"settings.ntp.options": `["iburst"]`,
			},
			"apiclient-set-Ab3dE5Fg7hI9jK1l": {
				"settings.ntp.options": `["iburst","prefer"]`,
			},
		},
	}
}

// newBase makes a datastore base holding s at version ver and returns the
// base and the datastore's directory.
func newBase(t *testing.T, ver string, s snapshot) (string, string) {
	t.Helper()
	base := filepath.Join(t.TempDir(), "datastore")
	dir, err := datastore.NewVersionDir(base, v(ver))
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, s)
	if err := datastore.LinkVersion(base, v(ver), dir); err != nil {
		t.Fatal(err)
	}
	return base, dir
}

func writeManifest(t *testing.T, migrations map[string][]string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"updates": []any{}, "migrations": migrations})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var v110Chain = []string{motdTemplate, ntpOptions, ntpMaxSrc}

// migrator runs the migrator binary and returns its exit code and output.
func migrator(t *testing.T, args ...string) (int, string) {
	t.Helper()
	bin := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "migrator"), args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("migrator: %v\n%s", err, out)
	return 0, ""
}

// migrateArgs are the usual arguments: the base given as .../current, as
// Bottlerocket's unit does.
func migrateArgs(t *testing.T, base, manifest, to string, extra ...string) []string {
	return append([]string{"--datastore-path", filepath.Join(base, "current"),
		"--migration-directory", filepath.Join(binaries(t), "migrations"),
		"--manifest", manifest, "--migrate-to-version", to, "--log-level", "debug"}, extra...)
}

// versionDirs lists the datastore directories under base.
func versionDirs(t *testing.T, base string) []string {
	t.Helper()
	entries, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// baseState is the base directory's entries with link targets, and the
// database file of dir, to prove that nothing changed.
func baseState(t *testing.T, base, dir string) (map[string]string, []byte) {
	t.Helper()
	entries, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]string{}
	for _, e := range entries {
		if e.Name() == LockFile {
			continue
		}
		target, _ := os.Readlink(filepath.Join(base, e.Name()))
		state[e.Name()] = target
	}
	db, err := os.ReadFile(filepath.Join(dir, datastore.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	return state, db
}

func currentIs(t *testing.T, base, ver string) string {
	t.Helper()
	got, dir, err := datastore.CurrentVersion(base)
	if err != nil {
		t.Fatal(err)
	}
	if got != v(ver) {
		t.Fatalf("current is at %s (%s), want %s", got, dir, ver)
	}
	return dir
}

func TestMigrateForwardAndBack(t *testing.T) {
	orig := storewolfLike()
	base, origDir := newBase(t, "1.0.0", orig)
	_, origDB := baseState(t, base, origDir)
	manifest := writeManifest(t, map[string][]string{"(1.0.0, 1.1.0)": v110Chain})
	release := filepath.Join(t.TempDir(), "os-release")
	if err := os.WriteFile(release, []byte("VARIANT_ID=metal-dev\nVERSION_ID=1.1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out := migrator(t, migrateArgs(t, base, manifest, "1.1.0", "--os-release", release)...)
	if code != 0 {
		t.Fatalf("forward: exit %d\n%s", code, out)
	}
	newDir := currentIs(t, base, "1.1.0")
	if !strings.HasPrefix(filepath.Base(newDir), "v1.1.0_") {
		t.Errorf("current resolves to %s, want a v1.1.0_ directory", newDir)
	}
	got := read(t, newDir)
	want := storewolfLike()
	want.Live["configuration-files.motd.template-path"] = `"/usr/share/templates/motd-v2"`
	want.Live["settings.ntp.options"] = `["iburst","minpoll 4"]`
	want.Pending["gantry-launch"]["settings.ntp.options"] = `["iburst","minpoll 4"]`
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after forward:\n got %v\nwant %v", got, want)
	}
	for _, name := range v110Chain {
		if !strings.Contains(out, name) {
			t.Errorf("the log does not mention %s:\n%s", name, out)
		}
	}
	// The old datastore is kept as it was, the intermediates are gone, and
	// the new one is complete.
	if _, db := baseState(t, base, origDir); !bytes.Equal(db, origDB) {
		t.Error("the v1.0.0 datastore changed")
	}
	if dirs := versionDirs(t, base); !reflect.DeepEqual(dirs, sorted(filepath.Base(origDir), filepath.Base(newDir))) {
		t.Errorf("directories after forward: %v", dirs)
	}
	if _, err := os.Stat(filepath.Join(newDir, IncompleteMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the in-progress marker is still there: %v", err)
	}

	// What 1.1.0's storewolf and a user add while running 1.1.0, which the
	// downgrade must take out again.
	write(t, newDir, snapshot{
		Live:     map[string]string{"settings.ntp.max-sources": `4`},
		Metadata: map[string]string{"settings.ntp.max-sources affected-services": `["ntp"]`},
		Pending:  map[string]map[string]string{"gantry-launch": {"settings.ntp.max-sources": `4`}},
	})

	code, out = migrator(t, migrateArgs(t, base, manifest, "1.0.0")...)
	if code != 0 {
		t.Fatalf("backward: exit %d\n%s", code, out)
	}
	backDir := currentIs(t, base, "1.0.0")
	if backDir == origDir || !strings.HasPrefix(filepath.Base(backDir), "v1.0.0_") {
		t.Errorf("current resolves to %s, want a new v1.0.0_ directory", backDir)
	}
	if got := read(t, backDir); !reflect.DeepEqual(got, orig) {
		t.Errorf("after backward:\n got %v\nwant %v", got, orig)
	}
}

func TestNoMigrationsNeeded(t *testing.T) {
	base, origDir := newBase(t, "1.0.0", storewolfLike())
	_, origDB := baseState(t, base, origDir)
	manifest := writeManifest(t, map[string][]string{"(1.0.0, 1.0.1)": {}})

	// Given the base itself rather than its current link.
	args := migrateArgs(t, base, manifest, "1.0.1")
	args[1] = base
	if code, out := migrator(t, args...); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	dir := currentIs(t, base, "1.0.1")
	db, err := os.ReadFile(filepath.Join(dir, datastore.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(db, origDB) {
		t.Error("the copied datastore differs from the original")
	}
	if got := read(t, dir); !reflect.DeepEqual(got, storewolfLike()) {
		t.Errorf("copied datastore holds %v", got)
	}
	if _, err := os.Stat(origDir); err != nil {
		t.Errorf("the 1.0.0 datastore is gone: %v", err)
	}
}

func TestNothingToDo(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) (base string)
	}{
		{"already at the target", func(t *testing.T) string {
			base, _ := newBase(t, "1.1.0", storewolfLike())
			return base
		}},
		{"first boot, empty base", func(t *testing.T) string { return t.TempDir() }},
		{"first boot, no base", func(t *testing.T) string { return filepath.Join(t.TempDir(), "missing") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := tt.setup(t)
			var before map[string]string
			if _, err := os.Stat(filepath.Join(base, "current")); err == nil {
				before, _ = baseState(t, base, filepath.Join(base, "current"))
			}
			// The manifest does not exist: it must not be needed.
			code, out := migrator(t, migrateArgs(t, base, filepath.Join(t.TempDir(), "no-manifest.json"), "1.1.0")...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			if before != nil {
				if after, _ := baseState(t, base, filepath.Join(base, "current")); !reflect.DeepEqual(after, before) {
					t.Errorf("base changed: %v → %v", before, after)
				}
			}
		})
	}
}

func TestMigrateToVersionFromOSRelease(t *testing.T) {
	base, _ := newBase(t, "1.0.0", storewolfLike())
	manifest := writeManifest(t, map[string][]string{"(1.0.0, 1.1.0)": v110Chain})
	release := filepath.Join(t.TempDir(), "os-release")
	if err := os.WriteFile(release, []byte("NAME=Gantry\nVARIANT_ID=metal-dev\nVERSION_ID=\"1.1.0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := migrator(t, "--datastore-path", base, "--migration-directory", filepath.Join(binaries(t), "migrations"),
		"--manifest", manifest, "--migrate-to-version-from-os-release", "--os-release", release)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	currentIs(t, base, "1.1.0")
}

func TestUsage(t *testing.T) {
	base, dir := newBase(t, "1.0.0", storewolfLike())
	common := []string{"--datastore-path", base, "--migration-directory", t.TempDir(), "--manifest", "m.json"}
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no target version", common, 2},
		{"two target versions", append(slices.Clone(common), "--migrate-to-version", "1.1.0", "--migrate-to-version-from-os-release"), 2},
		{"bad version", append(slices.Clone(common), "--migrate-to-version", "1.1"), 2},
		{"bad log level", append(slices.Clone(common), "--migrate-to-version", "1.1.0", "--log-level", "loud"), 2},
		{"missing required flag", []string{"--datastore-path", base, "--migrate-to-version", "1.1.0"}, 2},
		{"unknown flag", append(slices.Clone(common), "--root-path", "x"), 2},
		{"positional argument", append(slices.Clone(common), "--migrate-to-version", "1.1.0", "extra"), 2},
		{"release file without a version", append(slices.Clone(common), "--migrate-to-version-from-os-release", "--os-release", "/dev/null"), 1},
		{"given a version directory", []string{"--datastore-path", dir, "--migration-directory", ".",
			"--manifest", "m.json", "--migrate-to-version", "1.1.0"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, out := migrator(t, tt.args...); code != tt.want {
				t.Errorf("exit %d, want %d\n%s", code, tt.want, out)
			}
		})
	}
}

// TestFailureLeavesDatastoreUntouched runs chains that fail in different
// ways and checks that `current`, the links and the old datastore are
// exactly as before and that no new directory is left behind.
func TestFailureLeavesDatastoreUntouched(t *testing.T) {
	tests := []struct {
		name      string
		to        string
		chain     []string
		manifest  map[string][]string // instead of (1.0.0, to): chain
		extraArgs []string
		hold      bool // hold the datastore open for writing, as apiserver does
		want      string
	}{
		{name: "migration exits 1", to: "1.1.0", chain: []string{motdTemplate, ntpOptions, testFail},
			want: "step 3 of 3: migration migrate_test_fail forward failed: exit status 1: migrate_test_fail forward: on live data: this migration always fails"},
		{name: "first migration fails", to: "1.1.0", chain: []string{testFail, motdTemplate}, want: "step 1 of 2: migration migrate_test_fail forward failed"},
		{name: "backward migration fails", to: "0.9.0", chain: []string{testFail},
			manifest: map[string][]string{"(0.9.0, 1.0.0)": {testFail}}, want: "migrate_test_fail backward failed"},
		{name: "missing binary", to: "1.1.0", chain: []string{motdTemplate, "migrate_v1.1.0_missing"},
			want: "migrate_v1.1.0_missing: stat"},
		{name: "timeout", to: "1.1.0", chain: []string{motdTemplate, testSleep}, extraArgs: []string{"--migration-timeout", "1s"},
			want: "migration migrate_test_sleep timed out after 1s"},
		{name: "dead end", to: "1.2.0", chain: []string{motdTemplate}, want: "missing migration"},
		{name: "datastore in use", to: "1.1.0", chain: v110Chain, hold: true, want: "locked by another process"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, dir := newBase(t, "1.0.0", storewolfLike())
			if tt.hold {
				st, err := datastore.Open(context.Background(), dir, datastore.OpenOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
			}
			beforeState, beforeDB := baseState(t, base, dir)
			m := tt.manifest
			if m == nil {
				m = map[string][]string{"(1.0.0, 1.1.0)": tt.chain}
			}
			code, out := migrator(t, migrateArgs(t, base, writeManifest(t, m), tt.to, tt.extraArgs...)...)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, out)
			}
			t.Logf("migrator output:\n%s", out)
			if !strings.Contains(out, tt.want) {
				t.Errorf("output does not say %q:\n%s", tt.want, out)
			}
			afterState, afterDB := baseState(t, base, dir)
			if !reflect.DeepEqual(afterState, beforeState) {
				t.Errorf("base changed:\n before %v\n  after %v", beforeState, afterState)
			}
			if !bytes.Equal(afterDB, beforeDB) {
				t.Error("the datastore file changed")
			}
			if cur := currentIs(t, base, "1.0.0"); cur != dir {
				t.Errorf("current resolves to %s, want %s", cur, dir)
			}
		})
	}
}

// TestInterrupted kills the migrator with SIGKILL while a migration runs:
// `current` must still resolve to the old, intact datastore, and a later run
// must succeed and clear the leftovers.
func TestInterrupted(t *testing.T) {
	tests := []struct {
		name      string
		sig       syscall.Signal
		killGroup bool // signal the process group; otherwise only the migrator, and the child must die with it
	}{
		{"SIGKILL to the process group", syscall.SIGKILL, true},
		{"SIGKILL to the migrator only", syscall.SIGKILL, false},
		{"SIGTERM to the migrator", syscall.SIGTERM, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := storewolfLike()
			base, dir := newBase(t, "1.0.0", orig)
			beforeState, beforeDB := baseState(t, base, dir)
			sleepy := writeManifest(t, map[string][]string{"(1.0.0, 1.1.0)": {motdTemplate, testSleep}})

			cmd := exec.Command(filepath.Join(binaries(t), "migrator"), migrateArgs(t, base, sleepy, "1.1.0")...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
			child, log := waitForSleeper(t, stderr)
			go io.Copy(io.Discard, stderr)

			// A second migrator must not run beside the first.
			if code, out := migrator(t, migrateArgs(t, base, sleepy, "1.1.0")...); code != 1 || !strings.Contains(out, "another migrator is running") {
				t.Errorf("concurrent migrator: exit %d\n%s", code, out)
			}

			target := cmd.Process.Pid
			if tt.killGroup {
				target = -target
			}
			if err := syscall.Kill(target, tt.sig); err != nil {
				t.Fatal(err)
			}
			werr := cmd.Wait()
			waitGone(t, child)

			if cur := currentIs(t, base, "1.0.0"); cur != dir {
				t.Errorf("current resolves to %s, want %s", cur, dir)
			}
			afterState, afterDB := baseState(t, base, dir)
			for name, target := range beforeState {
				if afterState[name] != target {
					t.Errorf("entry %s changed: %q → %q", name, target, afterState[name])
				}
			}
			if !bytes.Equal(afterDB, beforeDB) {
				t.Error("the datastore file changed")
			}
			if got := read(t, filepath.Join(base, "current")); !reflect.DeepEqual(got, orig) {
				t.Errorf("datastore after the kill:\n got %v\nwant %v", got, orig)
			}
			dirs := versionDirs(t, base)
			if tt.sig == syscall.SIGTERM {
				// A migrator that is asked to stop cleans up and exits 1.
				var ee *exec.ExitError
				if !errors.As(werr, &ee) || ee.ExitCode() != 1 {
					t.Errorf("after SIGTERM the migrator ended with %v, want exit status 1", werr)
				}
				if !reflect.DeepEqual(dirs, []string{filepath.Base(dir)}) {
					t.Errorf("directories after SIGTERM: %v, want only the original", dirs)
				}
			} else if len(dirs) < 2 {
				t.Errorf("expected the killed run's directories to be left behind; log:\n%s", log)
			}

			good := writeManifest(t, map[string][]string{"(1.0.0, 1.1.0)": v110Chain})
			code, out := migrator(t, migrateArgs(t, base, good, "1.1.0")...)
			if code != 0 {
				t.Fatalf("rerun: exit %d\n%s", code, out)
			}
			newDir := currentIs(t, base, "1.1.0")
			if dirs := versionDirs(t, base); !reflect.DeepEqual(dirs, sorted(filepath.Base(dir), filepath.Base(newDir))) {
				t.Errorf("directories after the rerun: %v (leftovers not removed)\n%s", dirs, out)
			}
			if got := read(t, newDir).Live["configuration-files.motd.template-path"]; got != `"/usr/share/templates/motd-v2"` {
				t.Errorf("template path after the rerun: %s", got)
			}
		})
	}
}

// waitForSleeper reads the migrator's log until the sleeping migration
// announces its pid.
func waitForSleeper(t *testing.T, r io.Reader) (int, string) {
	t.Helper()
	type found struct {
		pid int
		log string
	}
	ch := make(chan found, 1)
	go func() {
		var log strings.Builder
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			log.WriteString(line + "\n")
			if _, rest, ok := strings.Cut(line, "sleeping pid="); ok {
				pid, _ := strconv.Atoi(strings.Trim(strings.Fields(rest)[0], `"`))
				ch <- found{pid, log.String()}
				return
			}
		}
		ch <- found{0, log.String()}
	}()
	select {
	case f := <-ch:
		if f.pid == 0 {
			t.Fatalf("the migrator ended before the sleeping migration started:\n%s", f.log)
		}
		return f.pid, f.log
	case <-time.After(time.Minute):
		t.Fatal("the sleeping migration did not start within a minute")
	}
	return 0, ""
}

// waitGone waits until process pid no longer exists.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && strings.Contains(string(b), ") Z ") {
			return // a zombie waiting for its new parent to reap it
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("migration process %d outlived the migrator", pid)
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func TestResolveBase(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/var/lib/gantry/datastore", "/var/lib/gantry/datastore"},
		{"/var/lib/gantry/datastore/current", "/var/lib/gantry/datastore"},
		{"/var/lib/gantry/datastore/current/", "/var/lib/gantry/datastore"},
		{"/var/lib/gantry/datastore/", "/var/lib/gantry/datastore"},
		{"current", "."},
	}
	for _, tt := range tests {
		if got := ResolveBase(tt.in); got != tt.want {
			t.Errorf("ResolveBase(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func v(s string) version.Semver {
	ver, err := version.Parse(s)
	if err != nil {
		panic(err)
	}
	return ver
}

// TestCompressedMigrations runs migrations as an update repository
// delivers them: zstd-compressed NAME.zst files, not executable.
func TestCompressedMigrations(t *testing.T) {
	base, _ := newBase(t, "1.0.0", storewolfLike())
	dir := t.TempDir()
	var names []string
	for _, name := range v110Chain {
		raw, err := os.ReadFile(filepath.Join(binaries(t), "migrations", name))
		if err != nil {
			t.Fatal(err)
		}
		f, _ := os.Create(filepath.Join(dir, name+".zst"))
		enc, _ := zstd.NewWriter(f)
		enc.Write(raw)
		enc.Close()
		f.Close()
		names = append(names, name+".zst")
	}
	manifest := writeManifest(t, map[string][]string{"(1.0.0, 1.1.0)": names})
	args := []string{"--datastore-path", base, "--migration-directory", dir, "--manifest", manifest, "--migrate-to-version", "1.1.0"}
	if code, out := migrator(t, args...); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	got := read(t, currentIs(t, base, "1.1.0"))
	if got.Live["configuration-files.motd.template-path"] != `"/usr/share/templates/motd-v2"` {
		t.Fatalf("compressed migration did not run: %v", got.Live)
	}
	os.WriteFile(filepath.Join(dir, "bad.zst"), []byte("not zstd"), 0o644)
	base2, _ := newBase(t, "1.0.0", storewolfLike())
	bad := writeManifest(t, map[string][]string{"(1.0.0, 1.1.0)": {"bad.zst"}})
	if code, out := migrator(t, "--datastore-path", base2, "--migration-directory", dir, "--manifest", bad, "--migrate-to-version", "1.1.0"); code == 0 || !strings.Contains(out, "bad.zst") {
		t.Fatalf("a corrupt compressed migration: exit %d\n%s", code, out)
	}
	currentIs(t, base2, "1.0.0")
}
