package networkd

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/network/netconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares files against testdata/<dir>, one file each, and that no
// other file is expected.
func golden(t *testing.T, dir string, files []File) {
	t.Helper()
	gdir := filepath.Join("testdata", dir)
	if *update {
		os.RemoveAll(gdir)
		os.MkdirAll(gdir, 0o755)
		for _, f := range files {
			os.WriteFile(filepath.Join(gdir, f.Name), []byte(f.Content), 0o644)
		}
	}
	want, err := os.ReadDir(gdir)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(files) {
		var names []string
		for _, f := range files {
			names = append(names, f.Name)
		}
		t.Fatalf("%d files (%s), golden has %d", len(files), strings.Join(names, " "), len(want))
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(gdir, f.Name))
		if err != nil {
			t.Fatalf("unexpected file %s:\n%s", f.Name, f.Content)
		}
		if string(b) != f.Content {
			t.Errorf("%s differs (go test -update to accept):\n--- got\n%s\n--- want\n%s", f.Name, f.Content, b)
		}
	}
}

func parse(t *testing.T, file string) *netconfig.Config {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	c, err := netconfig.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(t *testing.T) *netconfig.Config
	}{
		{"default", func(*testing.T) *netconfig.Config { return netconfig.Default("eth0") }},
		{"cmdline", func(t *testing.T) *netconfig.Config {
			c, err := netconfig.FromCmdline("netdog.default-interface=eth0:dhcp4?,dhcp6")
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"v3", func(t *testing.T) *netconfig.Config { return parse(t, "v3.toml") }},
		{"static", func(t *testing.T) *netconfig.Config { return parse(t, "static.toml") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { golden(t, tt.name, Files(tt.cfg(t))) })
	}
}

func TestWaitOnlineArgs(t *testing.T) {
	cmd := func(s string) *netconfig.Config {
		c, err := netconfig.FromCmdline("netdog.default-interface=" + s)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		cfg     *netconfig.Config
		primary string
		want    string
	}{
		{netconfig.Default("eth0"), "eth0", "--interface=eth0:routable --ipv4"},
		{cmd("eth0:dhcp4,dhcp6"), "eth0", "--interface=eth0:routable --ipv4 --ipv6"},
		{cmd("eth0:dhcp4?,dhcp6"), "eth0", "--interface=eth0:routable --ipv6"},
		{cmd("eth0:dhcp4?,dhcp6?"), "eth0", "--interface=eth0:routable"},
		{netconfig.Default("eth0"), "", "--any"},
	}
	for _, tt := range tests {
		if got := strings.Join(WaitOnlineArgs(tt.cfg, tt.primary), " "); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.cfg.Devices[0], got, tt.want)
		}
	}
}
