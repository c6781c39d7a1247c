package netdog

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/internal/network/netdog"
)

// node is a node's tree for the command line: one interface, eth0.
func node(t *testing.T, files map[string]string) (netdog.Host, string) {
	t.Helper()
	root := t.TempDir()
	files["/proc/cmdline"] = "console=ttyS0\n"
	files["/sys/class/net/eth0/ifindex"] = "2\n"
	files["/sys/class/net/eth0/address"] = "52:54:00:12:34:56\n"
	files["/sys/class/net/eth0/device/vendor"] = "0x1af4\n"
	for p, c := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := netdog.Host{Paths: netdog.System(), Addrs: func(string) ([]netip.Prefix, error) {
		return []netip.Prefix{netip.MustParsePrefix("10.0.2.15/24")}, nil
	}}
	return h, root
}

func run(t *testing.T, h netdog.Host, args ...string) (error, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := NewCommand(h, IO{Out: &out, Err: &errb})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	err := cmd.ExecuteContext(context.Background())
	return err, out.String(), errb.String()
}

func TestGenerateNetConfigCommand(t *testing.T) {
	tests := []struct {
		name    string
		netTOML string
		fail    bool
		stdout  []string
		stderr  []string
	}{
		{name: "default", stdout: []string{"network configuration from default: 1 devices, primary eth0; wrote 1 files"}},
		{name: "net.toml", netTOML: "version = 2\n[eth0.static4]\naddresses = [\"10.0.3.20/24\"]\n",
			stdout: []string{netdog.PrivateNetTOML + ": 1 devices, primary eth0"}},
		{name: "bad net.toml", netTOML: "version = 2\n[eth0]\ndhcp4 = \"yes\"\n", fail: true,
			stdout: []string{"from default"},
			stderr: []string{"netdog: ERROR: the network configuration was not used:", "eth0.dhcp4: must be true, false or a table", "netdog: falling back to DHCP on eth0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			if tt.netTOML != "" {
				files[netdog.PrivateNetTOML] = tt.netTOML
			}
			h, root := node(t, files)
			err, out, errs := run(t, h, "--root", root, "generate-net-config")
			if (err != nil) != tt.fail {
				t.Fatalf("err %v (want failure %v)\n%s%s", err, tt.fail, out, errs)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
			if _, err := os.Stat(filepath.Join(root, "/run/systemd/network/10-eth0.network")); err != nil {
				t.Errorf("no .network file written: %v", err)
			}
		})
	}
}

func TestNodeIPAndOnline(t *testing.T) {
	h, root := node(t, map[string]string{
		"/run/netdog/primary-interface": "eth0\n",
		"/proc/net/route":               "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\neth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\n",
		"/run/systemd/netif/links/2":    "DNS=10.0.2.3\n",
		"/dev/console":                  "",
		"/etc/hostname":                 "node\n",
	})
	err, out, _ := run(t, h, "--root", root, "node-ip")
	var ip string
	if err != nil || json.Unmarshal([]byte(out), &ip) != nil || ip != "10.0.2.15" {
		t.Fatalf("node-ip: %v %q", err, out)
	}
	// online: resolv.conf from DHCP (no API socket here), and the state
	// line on stdout and on the console device.
	console := filepath.Join(root, "dev/console")
	err, out, errs := run(t, h, "--root", root, "--socket-path", filepath.Join(root, "none.sock"), "online", "--console", console)
	if err != nil || !strings.Contains(out, "netdog: network online: eth0 10.0.2.15/24, default route via 10.0.2.2, DHCP name servers 10.0.2.3") {
		t.Fatalf("online: %v\n%s%s", err, out, errs)
	}
	if b, _ := os.ReadFile(console); !strings.Contains(string(b), "netdog: network online: eth0") {
		t.Errorf("console device got %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/resolv.conf")); !strings.Contains(string(b), "nameserver 10.0.2.3\n") {
		t.Errorf("resolv.conf = %q", b)
	}
	// Without a default route the node is not online, and says so.
	os.WriteFile(filepath.Join(root, "proc/net/route"), []byte("Iface\tDestination\tGateway\n"), 0o644)
	if err, _, errs := run(t, h, "--root", root, "--socket-path", filepath.Join(root, "none.sock"), "online"); err == nil ||
		!strings.Contains(errs, "netdog: network NOT online: eth0 10.0.2.15/24, no default route") {
		t.Fatalf("online without a default route: %v %s", err, errs)
	}
}
