package earlyboot_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/imdstest"
	"github.com/gantry-os/gantry/internal/settings/earlyboot"
	"github.com/gantry-os/gantry/internal/settings/userdata"
)

func run(t *testing.T, n *node, marker string, ps ...earlyboot.Provider) (earlyboot.Result, error) {
	t.Helper()
	return earlyboot.Run(context.Background(), earlyboot.Config{API: n.api, Model: n.model, Providers: ps, Marker: marker})
}

func TestRunSendsUserData(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"plain", []byte("[settings]\nmotd = \"hello\"\n[settings.kernel.sysctl]\n\"vm.max_map_count\" = \"262144\"\n[other]\nignored = true\n")},
		{"gzip", gzipped(t, "[settings]\nmotd = \"hello\"\n[settings.kernel.sysctl]\n\"vm.max_map_count\" = \"262144\"\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startNode(t)
			dir := t.TempDir()
			file := writeFile(t, dir, "user-data.toml", tt.data)
			marker := filepath.Join(dir, "state", "early-boot-config.ran")
			res, err := run(t, n, marker, earlyboot.FileProvider{Path: file})
			if err != nil {
				t.Fatal(err)
			}
			want := `{"kernel":{"sysctl":{"vm.max_map_count":"262144"}},"motd":"hello"}`
			if got := n.launchTx(t); got != want {
				t.Fatalf("gantry-launch = %s, want %s", got, want)
			}
			if res.Skipped || len(res.Sources) != 1 || res.Sources[0] != file {
				t.Fatalf("result = %+v", res)
			}
			// Staged, not committed: live settings are untouched.
			if got := n.get(t, "/settings"); got != "{}" {
				t.Fatalf("live settings = %s", got)
			}
			if _, err := os.Stat(marker); err != nil {
				t.Fatalf("marker: %v", err)
			}
			if entries, _ := os.ReadDir(filepath.Dir(marker)); len(entries) != 1 {
				t.Fatalf("marker directory holds %d entries, want just the marker", len(entries))
			}
		})
	}
}

func TestRunPrecedence(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()
	defaults := earlyboot.FileProvider{Label: "local-defaults", Path: writeFile(t, dir, "defaults.toml", []byte(`
[settings]
motd = "defaults"
[settings.network]
hostname = "from-defaults"
[settings.ntp]
time-servers = ["a.example", "b.example", "c.example"]
[settings.kernel.sysctl]
"vm.a" = "defaults"
"vm.b" = "defaults"
`))}
	missing := earlyboot.FileProvider{Label: "local-user-data", Path: filepath.Join(dir, "absent.toml")}
	fwcfg := earlyboot.FwCfgProvider{Sysfs: fwCfgTree(t, []byte(`
[settings]
motd = "fw_cfg"
[settings.kernel.sysctl]
"vm.b" = "fw_cfg"
"vm.c" = "fw_cfg"
`))}
	disk := earlyboot.ConfigDiskProvider{Label: "GANTRY-UD", Device: makeISO(t, isoOptions{label: "GANTRY-UD", rockRidge: true},
		map[string][]byte{"user-data.toml": gzipped(t, "[settings.ntp]\ntime-servers = [\"disk.example\"]\n[settings.kernel.sysctl]\n\"vm.c\" = \"disk\"\n")})}
	imds := imdstest.Start(t, imdstest.Options{UserData: []byte("[settings.network]\nhostname = \"from-imds\"\n")})
	overrides := earlyboot.FileProvider{Label: "local-overrides", Path: writeFile(t, dir, "overrides.toml", []byte("[settings]\nmotd = \"overrides\"\n"))}

	res, err := run(t, n, filepath.Join(dir, "marker"), defaults, missing, fwcfg, disk,
		earlyboot.IMDSProvider{Client: fastClient(imds.URL, nil)}, overrides)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kernel":{"sysctl":{"vm.a":"defaults","vm.b":"fw_cfg","vm.c":"disk"}},"motd":"overrides",` +
		`"network":{"hostname":"from-imds"},"ntp":{"time-servers":["disk.example"]}}`
	if got := n.launchTx(t); got != want {
		t.Fatalf("gantry-launch:\n got %s\nwant %s", got, want)
	}
	if len(res.Sources) != 5 {
		t.Fatalf("sources = %v", res.Sources)
	}
}

func TestRunIMDS(t *testing.T) {
	tests := []struct {
		name     string
		userData []byte
		expire   bool
		wantTx   string
		wantTok  int
	}{
		{name: "user data", userData: []byte("[settings]\nmotd = \"imds\"\n"), wantTx: `{"motd":"imds"}`, wantTok: 1},
		{name: "gzip user data", userData: gzipped(t, "[settings]\nmotd = \"imds gz\"\n"), wantTx: `{"motd":"imds gz"}`, wantTok: 1},
		{name: "404 is none", userData: nil, wantTx: `{"motd":"file"}`, wantTok: 1},
		{name: "blank is none", userData: []byte("\n"), wantTx: `{"motd":"file"}`, wantTok: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startNode(t)
			dir := t.TempDir()
			file := earlyboot.FileProvider{Path: writeFile(t, dir, "u.toml", []byte("[settings]\nmotd = \"file\"\n"))}
			srv := imdstest.Start(t, imdstest.Options{UserData: tt.userData})
			marker := filepath.Join(dir, "marker")
			if _, err := run(t, n, marker, file, earlyboot.IMDSProvider{Client: fastClient(srv.URL, nil)}); err != nil {
				t.Fatal(err)
			}
			if got := n.launchTx(t); got != tt.wantTx {
				t.Fatalf("gantry-launch = %s, want %s", got, tt.wantTx)
			}
			if c := srv.Counts(); c.TokenRequests != tt.wantTok {
				t.Fatalf("counts = %+v", c)
			}
		})
	}
}

func TestRunIMDSUnreachable(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()
	file := earlyboot.FileProvider{Path: writeFile(t, dir, "u.toml", []byte("[settings]\nmotd = \"file\"\n"))}
	marker := filepath.Join(dir, "marker")
	_, err := run(t, n, marker, file, earlyboot.IMDSProvider{Client: fastClient("http://127.0.0.1:1", nil)})
	if err == nil || !strings.Contains(err.Error(), "nothing was sent") || !strings.Contains(err.Error(), "provider imds:") {
		t.Fatalf("err = %v", err)
	}
	var pe *earlyboot.ProviderError
	if !errors.As(err, &pe) || pe.Provider != "imds" {
		t.Fatalf("err %v is not the imds provider's", err)
	}
	assertNothingSent(t, n, marker)
}

func assertNothingSent(t *testing.T, n *node, marker string) {
	t.Helper()
	if got := n.launchTx(t); got != "{}" {
		t.Fatalf("gantry-launch = %s, want it empty", got)
	}
	if got := n.get(t, "/tx/list"); got != "[]" {
		t.Fatalf("transactions = %s, want none", got)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker exists after a failed run (%v)", err)
	}
}

func TestRunInvalidUserData(t *testing.T) {
	good := []byte("[settings]\nmotd = \"good\"\n[settings.updates]\nseed = 7\n")
	tests := []struct {
		name   string
		second []byte
		want   []string // all must appear in the error
	}{
		{
			name:   "TOML syntax error",
			second: []byte("[settings]\nmotd = \"x\"\n\nhostname = \n"),
			want:   []string{"invalid user data; nothing was sent", "provider second: ", "second.toml:4: invalid TOML"},
		},
		{
			name:   "unknown key",
			second: []byte("# overrides\n[settings.network]\nhostname = \"ok\"\nhost-name = \"typo\"\n"),
			want:   []string{"provider second: ", "second.toml:4: settings.network.host-name: unknown setting (allowed here: "},
		},
		{
			name:   "ill-typed key",
			second: []byte("[settings]\nmotd = \"fine\"\n\n[settings.updates]\nseed = \"x\"\n"),
			want:   []string{"provider second: ", `second.toml:5: settings.updates.seed: expected an integer 0-2047, got the string "x"`},
		},
		{
			name:   "bad list element",
			second: []byte("[settings.ntp]\ntime-servers = [\n  \"ok.example\",\n  \"how are you\",\n]\n"),
			want:   []string{"provider second: ", `second.toml:4: settings.ntp.time-servers[1]: "how are you" is not a URL`},
		},
		{
			name:   "gzip with an error",
			second: gzipped(t, "[settings]\nmotd = 5\n"),
			want:   []string{"provider second: ", "second.toml:2: settings.motd: expected a string"},
		},
		{
			name:   "not even gzip",
			second: []byte{0x1f, 0x8b, 1, 2, 3},
			want:   []string{"provider second: ", "second.toml: user data starts like gzip but is not"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startNode(t)
			dir := t.TempDir()
			first := earlyboot.FileProvider{Label: "first", Path: writeFile(t, dir, "first.toml", good)}
			second := earlyboot.FileProvider{Label: "second", Path: writeFile(t, dir, "second.toml", tt.second)}
			marker := filepath.Join(dir, "marker")
			_, err := run(t, n, marker, first, second)
			if err == nil {
				t.Fatal("Run accepted invalid user data")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), strings.Replace(w, "second.toml", second.Path, 1)) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var pe *earlyboot.ProviderError
			var el userdata.ErrorList
			if !errors.As(err, &pe) || pe.Provider != "second" || !errors.As(err, &el) || el[0].Source != second.Path {
				t.Errorf("error %v does not carry the provider and source", err)
			}
			assertNothingSent(t, n, marker)
		})
	}
}

func TestRunReportsEveryProvider(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()
	a := earlyboot.FileProvider{Label: "a", Path: writeFile(t, dir, "a.toml", []byte("[settings]\nmotd = 1\n"))}
	b := earlyboot.FileProvider{Label: "b", Path: writeFile(t, dir, "b.toml", []byte("[settings]\nmotd = \"ok\"\n"))}
	c := earlyboot.FileProvider{Label: "c", Path: writeFile(t, dir, "c.toml", []byte("[settings.updates]\nseed = 9999\n"))}
	marker := filepath.Join(dir, "marker")
	_, err := run(t, n, marker, a, b, c)
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	if !strings.Contains(msg, "provider a: "+a.Path+":2: settings.motd") || !strings.Contains(msg, "provider c: "+c.Path+":2: settings.updates.seed") ||
		strings.Contains(msg, "provider b") {
		t.Fatalf("error = %v", err)
	}
	assertNothingSent(t, n, marker)
}

func TestRunFetchFailureSendsNothing(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()
	good := earlyboot.FileProvider{Path: writeFile(t, dir, "u.toml", []byte(ud))}
	broken := earlyboot.ConfigDiskProvider{Device: writeFile(t, dir, "junk.iso", []byte("not a filesystem at all"))}
	marker := filepath.Join(dir, "marker")
	_, err := run(t, n, marker, good, broken)
	if err == nil || !strings.Contains(err.Error(), "fetch user data; nothing was sent: provider config-disk: config disk") {
		t.Fatalf("err = %v", err)
	}
	assertNothingSent(t, n, marker)
}

func TestRunMarker(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "u.toml", []byte("[settings]\nmotd = \"first boot\"\n"))
	marker := filepath.Join(dir, "marker")
	if _, err := run(t, n, marker, earlyboot.FileProvider{Path: file}); err != nil {
		t.Fatal(err)
	}
	// Commit the launch transaction, as settings-committer would, then
	// change the user data: a second run must not touch anything.
	if _, err := n.api.Raw(context.Background(), "POST", "/tx/commit?tx=gantry-launch", nil); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "u.toml", []byte("[settings]\nmotd = \"second boot\"\nbroken = \n"))
	res, err := run(t, n, marker, earlyboot.FileProvider{Path: file})
	if err != nil || !res.Skipped {
		t.Fatalf("second run = %+v, %v; want skipped", res, err)
	}
	if got := n.launchTx(t); got != "{}" {
		t.Fatalf("gantry-launch after the second run = %s", got)
	}
	if got := n.get(t, "/settings"); got != `{"motd":"first boot"}` {
		t.Fatalf("settings = %s", got)
	}
}

func TestRunNoUserData(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	res, err := run(t, n, marker,
		earlyboot.FileProvider{Path: filepath.Join(dir, "absent.toml")},
		earlyboot.FileProvider{Path: writeFile(t, dir, "other.toml", []byte("[not-settings]\nx = 1\n"))},
		earlyboot.FwCfgProvider{Sysfs: dir},
		earlyboot.ConfigDiskProvider{Device: filepath.Join(dir, "absent.iso")},
	)
	if err != nil || res.Settings != nil || len(res.Sources) != 0 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if got := n.get(t, "/tx/list"); got != "[]" {
		t.Fatalf("transactions = %s: nothing should have been sent", got)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("marker not written after a run with no user data: %v", err)
	}
}

func TestRunAPIRefusalLeavesNoMarker(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	file := earlyboot.FileProvider{Path: writeFile(t, dir, "u.toml", []byte(ud))}
	// The server refuses the PATCH (here, for its transaction name).
	_, err := earlyboot.Run(context.Background(), earlyboot.Config{
		API: n.api, Model: n.model, Providers: []earlyboot.Provider{file}, Marker: marker, Tx: "bad tx name!"})
	if err == nil || !strings.Contains(err.Error(), "send user data to transaction bad tx name!: Status 400") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker written after a refused PATCH")
	}
}
