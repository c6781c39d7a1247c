//go:build vm

package qemu

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-os/gantry/pkg/apiclient"
)

// TestNetworkInVM boots the metal-dev image the way a machine boots: the
// node configures its own network (netdog, systemd-networkd), and
// api-bridge does nothing to it.
//
// First boot: a net.toml (version 3, through fw_cfg) asks for DHCP on eth0,
// gives a second NIC, named by its MAC address, the static address
// 10.0.3.20/24, and bonds eth2 and eth3 (on one network, through a QEMU
// hub) into bond0 with DHCP. The node takes QEMU's lease (10.0.2.15, default route via
// 10.0.2.2, name server 10.0.2.3) and says so on the console; the API
// answers through the bridge on that address; and a port forward to
// 10.0.3.20 on the second NIC's own network reaches the API too, which it
// can only when the static address is on that interface; and a forward to
// 10.0.4.15 on the hub's network reaches it through the bond. The host name is
// generated from the network. (TestUpdateAndRollbackInVM covers reaching an
// update repository on the host, names resolved through 10.0.2.3 and the
// proxy.)
//
// Second boot: a net.toml with a mistake. The console names the field and
// the reason, the node falls back to DHCP on eth0, and the API answers.
func TestNetworkInVM(t *testing.T) {
	bd, _ := vmImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()

	fwdPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	bondPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	const mac = "52:54:00:ab:cd:01"
	netTOML := filepath.Join(t.TempDir(), "net.toml")
	os.WriteFile(netTOML, []byte(`version = 3

[eth0]
dhcp4 = true
primary = true

["`+mac+`".static4]
addresses = ["10.0.3.20/24"]

# eth2 and eth3 share one network (a QEMU hub): an active-backup bond over
# them takes a DHCP lease there.
[bond0]
kind = "bond"
mode = "active-backup"
interfaces = ["eth2", "eth3"]
dhcp4 = { enabled = true, route-metric = 2000 }

[bond0.monitoring]
miimon-frequency-ms = 100
miimon-updelay-ms = 200
miimon-downdelay-ms = 200
`), 0o644)
	ud := filepath.Join(t.TempDir(), "user-data.toml")
	os.WriteFile(ud, []byte("[settings]\nmotd = \"network test\"\n"), 0o644)

	n, err := Start(ctx, Options{BuildDir: bd, RunDir: vmRunDir(t, "net"), UserData: ud, NetTOML: netTOML, Fresh: true,
		StopTimeout: 5 * time.Second,
		NICs: []NIC{
			{Net: netip.MustParsePrefix("10.0.3.0/24"), MAC: mac, Forward: netip.MustParseAddr("10.0.3.20"), HostPort: fwdPort},
			{Net: netip.MustParsePrefix("10.0.4.0/24"), Ports: 2, Forward: netip.MustParseAddr("10.0.4.15"), HostPort: bondPort},
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(context.Background())
	start := time.Now()
	if err := n.WaitForAPI(ctx); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, tail(n.Console(), 60))
	}
	t.Logf("API answered through the DHCP address after %v", time.Since(start).Round(time.Millisecond))
	online := waitConsole(ctx, t, n, "netdog: network online:")
	t.Logf("network online %v after start", time.Since(start).Round(time.Millisecond))
	for _, want := range []string{"eth0 10.0.2.15/24", "default route via 10.0.2.2", "DHCP name servers 10.0.2.3"} {
		if !strings.Contains(online, want) {
			t.Errorf("console's online line lacks %q: %s", want, online)
		}
	}
	// generate-net-config's line reaches the console through journald,
	// which may come later.
	if l := waitConsole(ctx, t, n, "netdog: network configuration from"); !strings.Contains(l,
		"from /sys/firmware/qemu_fw_cfg/by_name/opt/gantry/net.toml/raw: 3 devices, primary eth0") {
		t.Errorf("netdog did not take the net.toml: %s", l)
	}

	// The second NIC's static address: only the guest's 10.0.3.20 on eth1
	// answers QEMU's forward into that network.
	body, err := getOverTCPRetrying(ctx, fwdPort, "/os")
	if err != nil || !strings.Contains(body, `"variant_id":"metal-dev"`) {
		t.Fatalf("the API through 10.0.3.20 on the second NIC: %q %v\nconsole:\n%s", body, err, grepLines(n.Console(), "netdog"))
	}

	// The bond: QEMU's DHCP on the hub's network leased its first address
	// to bond0, which only networkd's bond over eth2 and eth3 can hold.
	body, err = getOverTCPRetrying(ctx, bondPort, "/os")
	if err != nil || !strings.Contains(body, `"variant_id":"metal-dev"`) {
		t.Fatalf("the API through bond0's DHCP address 10.0.4.15: %q %v\nconsole:\n%s", body, err, grepLines(n.Console(), "netdog"))
	}

	// The host name came from the network: QEMU's DHCP names none, so it is
	// the reverse DNS name of 10.0.2.15 or ip-10-0-2-15.
	// sundog generates it once the network is online.
	c := apiclient.New(n.SocketPath())
	var hb []byte
	for {
		var code int
		code, hb, err = c.Do(ctx, "GET", "/settings?keys=settings.network.hostname", nil)
		if err == nil && code == 200 && strings.Contains(string(hb), `"hostname":"`) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no generated host name: %d %s %v\nconsole:\n%s", code, hb, err, tail(n.Console(), 40))
		}
		time.Sleep(time.Second)
	}
	t.Logf("generated host name: %s", hb)
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A broken net.toml: the error on the console, DHCP on eth0, the API up.
	os.WriteFile(netTOML, []byte("version = 3\n\n[eth0]\ndhcp4 = \"yes\"\n"), 0o644)
	n2, err := Start(ctx, Options{BuildDir: bd, RunDir: vmRunDir(t, "netbad"), UserData: ud, NetTOML: netTOML, Fresh: true,
		StopTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Stop(context.Background())
	if err := n2.WaitForAPI(ctx); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, tail(n2.Console(), 60))
	}
	errLine := waitConsole(ctx, t, n2, "netdog: ERROR:")
	if !strings.Contains(errLine, `eth0.dhcp4: must be true, false or a table with enabled, route-metric and optional; got "yes"`) {
		t.Errorf("the console's error does not name the field and reason: %s", errLine)
	}
	if !strings.Contains(n2.Console(), "netdog: falling back to DHCP on eth0") {
		t.Errorf("no fallback on the console:\n%s", grepLines(n2.Console(), "netdog"))
	}
	if online := waitConsole(ctx, t, n2, "netdog: network online:"); !strings.Contains(online, "eth0 10.0.2.15/24") {
		t.Errorf("after the fallback: %s", online)
	}
	if code, _, err := apiclient.New(n2.SocketPath()).Do(ctx, "GET", "/os", nil); err != nil || code != 200 {
		t.Fatalf("API after a bad net.toml: %d %v", code, err)
	}
}

// waitConsole waits for a console line containing s and returns it.
func waitConsole(ctx context.Context, t *testing.T, n *Node, s string) string {
	t.Helper()
	for {
		for _, l := range strings.Split(n.Console(), "\n") {
			if strings.Contains(l, s) {
				return l
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("no %q on the console:\n%s", s, tail(n.Console(), 60))
		}
		time.Sleep(time.Second)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// getOverTCPRetrying tries getOverTCP on the host's port for up to 30 s:
// QEMU's forward accepts at once, and the guest may not answer yet.
func getOverTCPRetrying(ctx context.Context, port int, path string) (string, error) {
	for try := 0; ; try++ {
		body, err := getOverTCP(ctx, fmt.Sprintf("127.0.0.1:%d", port), path)
		if err == nil || try == 30 || ctx.Err() != nil {
			return body, err
		}
		time.Sleep(time.Second)
	}
}

// getOverTCP sends one HTTP GET to the API bridge at addr.
func getOverTCP(ctx context.Context, addr, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://node"+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
