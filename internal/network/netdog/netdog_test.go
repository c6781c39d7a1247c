package netdog

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeHost is a node's tree in a temporary directory: /sys/class/net with
// the given interfaces (name → MAC; physical ones have a device link),
// /proc/net, networkd's state, and the kernel command line.
type fakeHost struct {
	t     *testing.T
	root  string
	host  Host
	addrs map[string][]netip.Prefix
}

func newFakeHost(t *testing.T, cmdline string, ifaces ...string) *fakeHost {
	t.Helper()
	f := &fakeHost{t: t, root: t.TempDir(), addrs: map[string][]netip.Prefix{}}
	f.host = Host{Paths: System().Under(f.root), Addrs: func(name string) ([]netip.Prefix, error) {
		a, ok := f.addrs[name]
		if !ok {
			return nil, fmt.Errorf("no interface %s", name)
		}
		return a, nil
	}}
	f.write("/proc/cmdline", cmdline+"\n")
	f.write("/proc/net/route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n")
	f.write("/proc/net/ipv6_route", "")
	for i, spec := range ifaces {
		name, mac, _ := strings.Cut(spec, "=")
		dir := filepath.Join("/sys/class/net", name)
		// Lower indexes last, so that the order of the directory is not
		// the order of the indexes.
		f.write(filepath.Join(dir, "ifindex"), fmt.Sprintf("%d\n", 10-i))
		f.write(filepath.Join(dir, "address"), mac+"\n")
		if !strings.HasPrefix(name, "virt") {
			os.MkdirAll(filepath.Join(f.root, dir, "device"), 0o755)
		}
		f.addrs[name] = nil
	}
	return f
}

func (f *fakeHost) write(path, content string) {
	f.t.Helper()
	p := filepath.Join(f.root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeHost) read(path string) string {
	b, err := os.ReadFile(filepath.Join(f.root, path))
	if err != nil {
		return "<missing>"
	}
	return string(b)
}

func TestGenerateSources(t *testing.T) {
	const netTOML = "version = 2\n[eth1]\ndhcp4 = true\n[eth0.static4]\naddresses = [\"10.0.3.20/24\"]\n"
	tests := []struct {
		name     string
		cmdline  string
		private  string // net.toml on PRIVATE
		fwcfg    string // net.toml in fw_cfg
		ifaces   []string
		source   string
		primary  string
		files    string
		userErr  string
		waitArgs string
	}{
		{name: "default: the first physical interface by index", ifaces: []string{"virt0=aa:00:00:00:00:09", "eth0=52:54:00:12:34:56", "eth1=52:54:00:12:34:57"},
			source: "default", primary: "eth1", files: "10-eth1.network", waitArgs: "--interface=eth1:routable --ipv4"},
		{name: "kernel command line", cmdline: "quiet netdog.default-interface=eth0:dhcp4,dhcp6?", ifaces: []string{"eth0=52:54:00:12:34:56"},
			source: "kernel command line", primary: "eth0", files: "10-eth0.network", waitArgs: "--interface=eth0:routable --ipv4"},
		{name: "net.toml on PRIVATE wins over the command line", cmdline: "netdog.default-interface=eth0:dhcp4", private: netTOML,
			ifaces: []string{"eth0=52:54:00:12:34:56", "eth1=52:54:00:12:34:57"},
			source: PrivateNetTOML, primary: "eth1", files: "10-eth0.network 10-eth1.network", waitArgs: "--interface=eth1:routable --ipv4"},
		{name: "net.toml from fw_cfg", fwcfg: netTOML, ifaces: []string{"eth0=52:54:00:12:34:56"},
			source: FwCfgNetTOML, primary: "eth1", files: "10-eth0.network 10-eth1.network", waitArgs: "--interface=eth1:routable --ipv4"},
		{name: "primary by MAC is resolved to its interface", private: "version = 3\n[\"52:54:00:12:34:57\"]\ndhcp4 = true\n",
			ifaces: []string{"eth0=52:54:00:12:34:56", "eth1=52:54:00:12:34:57"},
			source: PrivateNetTOML, primary: "eth1", files: "10-525400123457.network", waitArgs: "--interface=eth1:routable --ipv4"},
		{name: "primary MAC not present", private: "version = 3\n[\"52:54:00:12:34:99\"]\ndhcp4 = true\n",
			ifaces: []string{"eth0=52:54:00:12:34:56"},
			source: PrivateNetTOML, primary: "", files: "10-525400123499.network", waitArgs: "--any"},
		{name: "bad net.toml falls back to the command line", cmdline: "netdog.default-interface=eth0:dhcp4", private: "version = 2\n[eth1.static4]\naddresses = [\"10.0.3.300/24\"]\n",
			ifaces: []string{"eth0=52:54:00:12:34:56"}, source: "kernel command line", primary: "eth0", files: "10-eth0.network",
			userErr: "eth1.static4.addresses[0]: \"10.0.3.300/24\" is not an IPv4 address", waitArgs: "--interface=eth0:routable --ipv4"},
		{name: "bad command line falls back to the default", cmdline: "netdog.default-interface=eth0:bogus", ifaces: []string{"eth0=52:54:00:12:34:56"},
			source: "default", primary: "eth0", files: "10-eth0.network", userErr: "unknown option \"bogus\"", waitArgs: "--interface=eth0:routable --ipv4"},
		{name: "bad net.toml, no command line: the first interface", private: "version = 9\n", ifaces: []string{"eth0=52:54:00:12:34:56"},
			source: "default", primary: "eth0", files: "10-eth0.network", userErr: "version: 9 is not a known version", waitArgs: "--interface=eth0:routable --ipv4"},
		{name: "no interface yet", source: "default", primary: "eth0", files: "10-eth0.network", waitArgs: "--interface=eth0:routable --ipv4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeHost(t, tt.cmdline, tt.ifaces...)
			os.MkdirAll(filepath.Join(f.root, "/sys/class/net"), 0o755)
			if tt.private != "" {
				f.write(PrivateNetTOML, tt.private)
			}
			if tt.fwcfg != "" {
				f.write(FwCfgNetTOML, tt.fwcfg)
			}
			// A stale generated file goes; a file of someone else stays.
			f.write("/run/systemd/network/10-old.network", generatedMark+" from an earlier boot\n")
			f.write("/run/systemd/network/99-admin.network", "[Match]\nName=eth9\n")
			g, err := Generate(f.host.Paths)
			if err != nil {
				t.Fatal(err)
			}
			source := g.Config.Source
			if strings.HasPrefix(source, f.root) {
				source = strings.TrimPrefix(source, f.root)
			}
			if source != tt.source {
				t.Errorf("source %q, want %q", source, tt.source)
			}
			if g.PrimaryName != tt.primary || f.host.PrimaryInterface() != tt.primary {
				t.Errorf("primary %q (state %q), want %q", g.PrimaryName, f.host.PrimaryInterface(), tt.primary)
			}
			entries, _ := os.ReadDir(filepath.Join(f.root, "/run/systemd/network"))
			var names []string
			for _, e := range entries {
				if e.Name() != "99-admin.network" {
					names = append(names, e.Name())
				}
			}
			if got := strings.Join(names, " "); got != tt.files {
				t.Errorf("files %q, want %q", got, tt.files)
			}
			if f.read("/run/systemd/network/99-admin.network") == "<missing>" {
				t.Error("a file netdog did not write was removed")
			}
			switch {
			case tt.userErr == "" && g.UserError != nil:
				t.Errorf("user error %v", g.UserError)
			case tt.userErr != "" && (g.UserError == nil || !strings.Contains(g.UserError.Error(), tt.userErr)):
				t.Errorf("user error %v, want %q", g.UserError, tt.userErr)
			}
			if got := f.read("/run/netdog/wait-online.env"); got != "NETDOG_WAIT_ONLINE_ARGS="+tt.waitArgs+"\n" {
				t.Errorf("wait-online.env = %q", got)
			}
		})
	}
}

func TestLinkState(t *testing.T) {
	f := newFakeHost(t, "", "eth0=52:54:00:12:34:56")
	f.addrs["eth0"] = []netip.Prefix{netip.MustParsePrefix("10.0.2.15/24"), netip.MustParsePrefix("fe80::5054:ff:fe12:3456/64"),
		netip.MustParsePrefix("fec0::5054:ff:fe12:3456/64")}
	// QEMU's user network as the kernel shows it: the default route via
	// 10.0.2.2 (little-endian hex), and IPv6's via fe80::2.
	f.write("/proc/net/route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"+
		"eth0\t0002000A\t00000000\t0001\t0\t0\t1024\t00FFFFFF\t0\t0\t0\n"+
		"eth0\t00000000\t0202000A\t0003\t0\t0\t1024\t00000000\t0\t0\t0\n")
	f.write("/proc/net/ipv6_route", "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000002 00000400 00000001 00000000 00000003 eth0\n")
	f.write("/run/netdog/primary-interface", "eth0\n")
	f.write("/run/systemd/netif/links/10", "# This is private data. Do not parse.\nADMIN_STATE=configured\nOPER_STATE=routable\nDNS=10.0.2.3 fec0::3%2#dns.example\nDOMAINS=corp.example\n")
	f.write("/run/systemd/netif/leases/10", "ADDRESS=10.0.2.15\nHOSTNAME=node-7\n")
	l, err := f.host.Primary()
	if err != nil {
		t.Fatal(err)
	}
	if !l.Online() || l.Gateway4.String() != "10.0.2.2" || l.Gateway6.String() != "fe80::2" || l.OperState != "routable" || l.Hostname != "node-7" {
		t.Fatalf("link = %+v", l)
	}
	if got := fmt.Sprint(l.DNS); got != "[10.0.2.3 fec0::3]" {
		t.Errorf("DNS = %s", got)
	}
	if got := l.String(); got != "eth0 10.0.2.15/24, fec0::5054:ff:fe12:3456/64, default route via 10.0.2.2, DHCP name servers 10.0.2.3 fec0::3" {
		t.Errorf("status line %q", got)
	}
	f.write("/proc/net/route", "Iface\tDestination\tGateway\n")
	f.write("/proc/net/ipv6_route", "")
	if l, _ := f.host.Primary(); l.Online() || !strings.Contains(l.String(), "no default route") {
		t.Errorf("without a default route: online %v, %q", l.Online(), l)
	}
}

func TestPrimaryFallsBackToDefaultRoute(t *testing.T) {
	f := newFakeHost(t, "", "ens4=52:54:00:12:34:56")
	f.addrs["ens4"] = []netip.Prefix{netip.MustParsePrefix("192.168.1.9/24")}
	if _, err := f.host.Primary(); !errors.Is(err, ErrNoPrimary) {
		t.Fatalf("no netdog state and no route: %v", err)
	}
	f.write("/proc/net/route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\nens4\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\n")
	l, err := f.host.Primary()
	if err != nil || l.Name != "ens4" || l.Gateway4.String() != "192.168.1.1" {
		t.Fatalf("%+v %v", l, err)
	}
}

func TestResolvConf(t *testing.T) {
	link := &Link{Name: "eth0", DNS: []netip.Addr{netip.MustParseAddr("10.0.2.3")}, Domains: []string{"dhcp.example"}}
	tests := []struct {
		name string
		dns  DNS
		link *Link
		want []string
	}{
		{"DHCP alone", DNS{}, link, []string{"# Name servers from DHCP on eth0.", "nameserver 10.0.2.3\n", "search dhcp.example\n"}},
		{"settings win", DNS{NameServers: []string{"1.1.1.1", "fd00::53"}}, link, []string{"from settings.dns", "nameserver 1.1.1.1\nnameserver fd00::53\n", "search dhcp.example\n"}},
		{"search list from settings", DNS{SearchList: []string{"a.example", "b.example"}}, link, []string{"nameserver 10.0.2.3\n", "search a.example b.example\n"}},
		{"nothing", DNS{}, nil, []string{"# No name servers"}},
	}
	for _, tt := range tests {
		got := string(ResolvConf(tt.dns, tt.link))
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: lacks %q:\n%s", tt.name, w, got)
			}
		}
		if tt.name == "settings win" && strings.Contains(got, "10.0.2.3") {
			t.Errorf("settings did not win:\n%s", got)
		}
	}

	f := newFakeHost(t, "", "eth0=52:54:00:12:34:56")
	f.write("/run/netdog/primary-interface", "eth0\n")
	f.write("/run/systemd/netif/links/10", "DNS=10.0.2.3\n")
	os.MkdirAll(filepath.Join(f.root, "etc"), 0o755)
	for i, want := range []bool{true, false} {
		changed, err := f.host.WriteResolvConf(DNS{})
		if err != nil || changed != want {
			t.Fatalf("write %d: changed %v, %v", i, changed, err)
		}
	}
	if !strings.Contains(f.read("/etc/resolv.conf"), "nameserver 10.0.2.3\n") {
		t.Errorf("resolv.conf = %q", f.read("/etc/resolv.conf"))
	}
}

func TestHostnameRules(t *testing.T) {
	tests := []struct {
		name     string
		lease    string
		addrs    []string
		lookup   []string
		lookErr  error
		want     string
		wantErrs error
	}{
		{name: "DHCP's host name first", lease: "HOSTNAME=Node-7\n", addrs: []string{"10.0.2.15/24"}, lookup: []string{"ptr.example."}, want: "node-7"},
		{name: "invalid DHCP name: reverse DNS", lease: "HOSTNAME=bad_name!\n", addrs: []string{"10.0.2.15/24"}, lookup: []string{"Node-7.Example.COM."}, want: "node-7.example.com"},
		{name: "reverse DNS", addrs: []string{"10.0.2.15/24"}, lookup: []string{"bad_name!", "ok.example."}, want: "ok.example"},
		{name: "no PTR: from the address", addrs: []string{"10.0.2.15/24"}, lookErr: errors.New("NXDOMAIN"), want: "ip-10-0-2-15"},
		{name: "IPv6 only", addrs: []string{"2001:db8::5/64"}, lookErr: errors.New("NXDOMAIN"), want: "ip-2001-db8--5"},
		{name: "IPv4 before IPv6", addrs: []string{"2001:db8::5/64", "10.0.0.7/8"}, lookErr: errors.New("NXDOMAIN"), want: "ip-10-0-0-7"},
		{name: "no address", wantErrs: ErrNoAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeHost(t, "", "eth0=52:54:00:12:34:56")
			f.write("/run/netdog/primary-interface", "eth0\n")
			if tt.lease != "" {
				f.write("/run/systemd/netif/leases/10", tt.lease)
			}
			for _, a := range tt.addrs {
				f.addrs["eth0"] = append(f.addrs["eth0"], netip.MustParsePrefix(a))
			}
			var asked string
			f.host.LookupAddr = func(_ context.Context, addr string) ([]string, error) {
				asked = addr
				return tt.lookup, tt.lookErr
			}
			got, err := f.host.Hostname(context.Background())
			if tt.wantErrs != nil {
				if !errors.Is(err, tt.wantErrs) {
					t.Fatalf("err %v, want %v", err, tt.wantErrs)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Hostname = %q, %v; want %q (looked up %q)", got, err, tt.want, asked)
			}
		})
	}
}

func TestSetHostnameRefusesBadNames(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hostname")
	os.WriteFile(p, []byte("not a valid name!\n"), 0o644)
	if _, err := SetHostname(p); err == nil || !strings.Contains(err.Error(), "not a valid name!") {
		t.Fatalf("err = %v", err)
	}
	if _, err := SetHostname(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("a missing file was accepted")
	}
}
