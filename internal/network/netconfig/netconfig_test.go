package netconfig

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// The example net.toml version 3 of Bottlerocket's metal provisioning
// guide, with the interfaces renamed to the kernel names Gantry's nodes have.
const exampleV3 = `
version = 3

[eth0]
dhcp4 = true
dhcp6 = true
primary = true

[eth1.dhcp4]
enabled = true
route-metric = 200

[eth1.dhcp6]
enabled = true
optional = true

[eth2.static4]
addresses = ["10.0.0.10/24", "11.0.0.11/24"]

[[eth2.route]]
to = "default"
via = "10.0.0.1"
route-metric = 100

[[eth2.route]]
to = "default"
via = "11.0.0.1"
route-metric = 200

[eth3.static4]
addresses = ["192.168.14.5/24"]

[[eth3.route]]
to = "10.10.10.0/24"
from = "192.168.14.5"
via = "192.168.14.25"

["0e:b3:69:44:b6:33"]
dhcp4 = true

["3e-03-69-49-e6-31".static4]
addresses = ["10.0.0.15/24"]

[["3e-03-69-49-e6-31".route]]
to = "default"
via = "10.0.0.1"

[bond0]
kind = "bond"
mode = "active-backup"
dhcp4 = false
dhcp6 = false
interfaces = ["eth11", "eth12"]

[bond0.monitoring]
miimon-frequency-ms = 100
miimon-updelay-ms = 200
miimon-downdelay-ms = 200

[bond1]
kind = "bond"
mode = "active-backup"
interfaces = ["eth51", "eth52", "eth53"]
min-links = 2
dhcp4 = true

[bond1.monitoring]
arpmon-interval-ms = 200
arpmon-validate = "all"
arpmon-targets = ["192.168.1.1", "10.0.0.2"]

[VLAN42]
kind = "vlan"
device = "bond0"
id = 42
dhcp4 = true

[internal_vlan]
kind = "vlan"
device = "eth4"
id = 1234
dhcp6 = true
`

func TestParseExampleV3(t *testing.T) {
	c, err := Parse([]byte(exampleV3))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range c.Devices {
		ids = append(ids, d.ID())
	}
	want := "eth0 eth1 eth2 eth3 0e:b3:69:44:b6:33 3e:03:69:49:e6:31 bond0 bond1 VLAN42 internal_vlan"
	if got := strings.Join(ids, " "); got != want {
		t.Fatalf("devices in file order:\n got %s\nwant %s", got, want)
	}
	if p := c.Primary(); p.Name != "eth0" {
		t.Errorf("primary = %s", p.ID())
	}
	eth1 := c.Devices[1]
	if eth1.DHCP4 == nil || eth1.DHCP4.RouteMetric == nil || *eth1.DHCP4.RouteMetric != 200 || eth1.DHCP6 == nil || !eth1.DHCP6.Optional {
		t.Errorf("eth1 = %+v", eth1)
	}
	eth2 := c.Devices[2]
	if len(eth2.Static4) != 2 || len(eth2.Routes) != 2 || !eth2.Routes[0].Default || eth2.Routes[0].To.String() != "0.0.0.0/0" ||
		eth2.Routes[1].Via != netip.MustParseAddr("11.0.0.1") || *eth2.Routes[1].Metric != 200 {
		t.Errorf("eth2 = %+v", eth2)
	}
	eth3 := c.Devices[3]
	if r := eth3.Routes[0]; r.Default || r.To.String() != "10.10.10.0/24" || r.From.String() != "192.168.14.5" {
		t.Errorf("eth3 route = %+v", r)
	}
	if c.Devices[5].MAC.String() != "3e:03:69:49:e6:31" {
		t.Errorf("dash-separated MAC = %v", c.Devices[5].MAC)
	}
	bond0 := c.Devices[6]
	if bond0.Kind != KindBond || bond0.HasAddressing() || bond0.Bond.MII == nil || bond0.Bond.MII.UpDelayMS != 200 ||
		strings.Join(bond0.Bond.Interfaces, ",") != "eth11,eth12" {
		t.Errorf("bond0 = %+v %+v", bond0, bond0.Bond)
	}
	bond1 := c.Devices[7]
	if bond1.Bond.ARP == nil || bond1.Bond.ARP.Validate != "all" || len(bond1.Bond.ARP.Targets) != 2 || bond1.Bond.MinLinks != 2 {
		t.Errorf("bond1 = %+v", bond1.Bond)
	}
	if v := c.Devices[8]; v.Kind != KindVLAN || v.VLAN.Device != "bond0" || v.VLAN.ID != 42 {
		t.Errorf("VLAN42 = %+v", v)
	}
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name, toml string
		check      func(t *testing.T, c *Config)
	}{
		{"v1 dhcp", "version = 1\n[eth0]\ndhcp4 = true\n", func(t *testing.T, c *Config) {
			if c.Version != 1 || c.Primary().Name != "eth0" || c.Devices[0].DHCP4 == nil || c.Devices[0].DHCP6 != nil {
				t.Errorf("%+v", c.Devices)
			}
		}},
		{"first is primary when none is marked", "version = 1\n[eth1]\ndhcp4 = true\n[eth0]\ndhcp6 = true\n", func(t *testing.T, c *Config) {
			if c.Primary().Name != "eth1" {
				t.Errorf("primary %s", c.Primary().ID())
			}
		}},
		{"primary marked later", "version = 2\n[eth0]\ndhcp4 = true\n[eth1]\ndhcp4 = true\nprimary = true\n", func(t *testing.T, c *Config) {
			if c.Primary().Name != "eth1" {
				t.Errorf("primary %s", c.Primary().ID())
			}
		}},
		{"dhcp4 table, disabled", "version = 1\n[eth0]\ndhcp6 = true\n[eth0.dhcp4]\nenabled = false\n", func(t *testing.T, c *Config) {
			if c.Devices[0].DHCP4 != nil {
				t.Errorf("disabled dhcp4 kept")
			}
		}},
		{"v2 static6 with on-link default route", "version = 2\n[eth0.static6]\naddresses = [\"2001:db8::5/64\"]\n[[eth0.route]]\nto = \"default\"\n", func(t *testing.T, c *Config) {
			r := c.Devices[0].Routes[0]
			if r.To.String() != "::/0" || r.Via.IsValid() {
				t.Errorf("route %+v", r)
			}
		}},
		{"mtu", "version = 2\n[eth0]\ndhcp4 = true\nmtu = 9001\n", func(t *testing.T, c *Config) {
			if c.Devices[0].MTU != 9001 {
				t.Errorf("mtu %d", c.Devices[0].MTU)
			}
		}},
		{"vlan on an unconfigured interface", "version = 3\n[v10]\nkind = \"VLAN\"\ndevice = \"eth1\"\nid = 10\ndhcp4 = true\n", func(t *testing.T, c *Config) {
			if c.Devices[0].VLAN.Device != "eth1" {
				t.Errorf("%+v", c.Devices[0])
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.toml))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// TestParseErrors checks that each mistake is named by its field, with a
// reason a person can act on.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, toml string
		field      string
		reason     string
	}{
		{"syntax", "version = 3\n[eth0]\ndhcp4 = tru\n", "line 3", ""},
		{"no version", "[eth0]\ndhcp4 = true\n", "version", "required"},
		{"unknown version", "version = 4\n", "version", "not a known version"},
		{"version as string", "version = \"3\"\n", "version", "not a known version"},
		{"no interfaces", "version = 3\n", "(file)", "no interfaces"},
		{"device not a table", "version = 1\neth0 = true\n", "eth0", "must be a table"},
		{"bad name", "version = 1\n[\"eth0.5\"]\ndhcp4 = true\n", "eth0.5", "must not contain '.'"},
		{"long name", "version = 1\n[abcdefghijklmnop]\ndhcp4 = true\n", "abcdefghijklmnop", "longer than 15"},
		{"loopback", "version = 1\n[lo]\ndhcp4 = true\n", "lo", "loopback"},
		{"unknown setting", "version = 3\n[eth0]\ndhcp4 = true\ndhcp = true\n", "eth0.dhcp", "unknown setting"},
		{"static in v1", "version = 1\n[eth0.static4]\naddresses = [\"10.0.0.2/24\"]\n", "eth0.static4", "needs version 2"},
		{"mac in v2", "version = 2\n[\"0e:b3:69:44:b6:33\"]\ndhcp4 = true\n", "0e:b3:69:44:b6:33", "need net.toml version 3"},
		{"bond in v2", "version = 2\n[bond0]\nkind = \"bond\"\n", "bond0.kind", "needs version 3"},
		{"dhcp4 wrong type", "version = 1\n[eth0]\ndhcp4 = \"yes\"\n", "eth0.dhcp4", "must be true, false or a table"},
		{"dhcp4 table without enabled", "version = 1\n[eth0.dhcp4]\noptional = true\n", "eth0.dhcp4.enabled", "required"},
		{"dhcp4 unknown key", "version = 1\n[eth0.dhcp4]\nenabled = true\nmetric = 5\n", "eth0.dhcp4.metric", "unknown setting"},
		{"dhcp6 route metric", "version = 1\n[eth0.dhcp6]\nenabled = true\nroute-metric = 5\n", "eth0.dhcp6.route-metric", "unknown setting"},
		{"negative metric", "version = 1\n[eth0.dhcp4]\nenabled = true\nroute-metric = -1\n", "eth0.dhcp4.route-metric", "out of range"},
		{"primary not bool", "version = 1\n[eth0]\ndhcp4 = true\nprimary = 1\n", "eth0.primary", "true or false"},
		{"two primaries", "version = 1\n[eth0]\ndhcp4 = true\nprimary = true\n[eth1]\ndhcp4 = true\nprimary = true\n", "eth0, eth1", "more than one device is primary"},
		{"no addressing", "version = 2\n[eth0]\nmtu = 1500\n", "eth0", "no addressing"},
		{"bad static address", "version = 2\n[eth0.static4]\naddresses = [\"10.0.0.300/24\"]\n", "eth0.static4.addresses[0]", "is not an IPv4 address with a prefix length"},
		{"address without prefix", "version = 2\n[eth0.static4]\naddresses = [\"10.0.0.3\"]\n", "eth0.static4.addresses[0]", "prefix length"},
		{"v6 in static4", "version = 2\n[eth0.static4]\naddresses = [\"10.0.0.2/24\", \"2001:db8::2/64\"]\n", "eth0.static4.addresses[1]", "is not an IPv4 address"},
		{"v4 in static6", "version = 2\n[eth0.static6]\naddresses = [\"10.0.0.2/24\"]\n", "eth0.static6.addresses[0]", "is not an IPv6 address"},
		{"empty addresses", "version = 2\n[eth0.static4]\naddresses = []\n", "eth0.static4.addresses", "required"},
		{"route with dhcp only", "version = 2\n[eth0]\ndhcp4 = true\n[[eth0.route]]\nto = \"default\"\nvia = \"10.0.0.1\"\n", "eth0.route", "need static4 or static6"},
		{"route not an array", "version = 2\n[eth0.static4]\naddresses = [\"10.0.0.2/24\"]\n[eth0.route]\nto = \"default\"\n", "eth0.route", "array of tables"},
		{"route without to", "version = 2\n[eth0.static4]\naddresses = [\"10.0.0.2/24\"]\n[[eth0.route]]\nvia = \"10.0.0.1\"\n", "eth0.route[0].to", "required"},
		{"route bad to", "version = 2\n[eth0.static4]\naddresses = [\"10.0.0.2/24\"]\n[[eth0.route]]\nto = \"everywhere\"\n", "eth0.route[0].to", "neither \"default\""},
		{"route bad via", "version = 2\n[eth0.static4]\naddresses = [\"10.0.0.2/24\"]\n[[eth0.route]]\nto = \"default\"\nvia = \"gateway\"\n", "eth0.route[0].via", "not an IP address"},
		{"route family mismatch", "version = 2\n[eth0.static4]\naddresses = [\"10.0.0.2/24\"]\n[[eth0.route]]\nto = \"10.1.0.0/16\"\nvia = \"fe80::1\"\n", "eth0.route[0].via", "family"},
		{"dual-stack default without via", "version = 2\n[eth0.static4]\naddresses = [\"10.0.0.2/24\"]\n[eth0.static6]\naddresses = [\"2001:db8::2/64\"]\n[[eth0.route]]\nto = \"default\"\n", "eth0.route[0].via", "picks the family"},
		{"route unknown key", "version = 2\n[eth0.static4]\naddresses = [\"10.0.0.2/24\"]\n[[eth0.route]]\nto = \"default\"\ngateway = \"10.0.0.1\"\n", "eth0.route[0].gateway", "unknown setting"},
		{"mtu too small", "version = 2\n[eth0]\ndhcp4 = true\nmtu = 10\n", "eth0.mtu", "out of range"},
		{"unknown kind", "version = 3\n[br0]\nkind = \"bridge\"\n", "br0.kind", "not a kind of device"},
		{"bond by mac", "version = 3\n[\"0e:b3:69:44:b6:33\"]\nkind = \"bond\"\nmode = \"active-backup\"\ninterfaces = [\"eth1\"]\ndhcp4 = true\n[\"0e:b3:69:44:b6:33\".monitoring]\nmiimon-frequency-ms = 100\nmiimon-updelay-ms = 100\nmiimon-downdelay-ms = 100\n", "0e:b3:69:44:b6:33", "cannot be named by MAC"},
		{"bond mode", "version = 3\n[bond0]\nkind = \"bond\"\nmode = \"802.3ad\"\ninterfaces = [\"eth1\"]\ndhcp4 = true\n[bond0.monitoring]\nmiimon-frequency-ms = 100\nmiimon-updelay-ms = 100\nmiimon-downdelay-ms = 100\n", "bond0.mode", "only active-backup"},
		{"bond without mode", "version = 3\n[bond0]\nkind = \"bond\"\ninterfaces = [\"eth1\"]\ndhcp4 = true\n[bond0.monitoring]\nmiimon-frequency-ms = 100\nmiimon-updelay-ms = 100\nmiimon-downdelay-ms = 100\n", "bond0.mode", "required"},
		{"bond without interfaces", "version = 3\n[bond0]\nkind = \"bond\"\nmode = \"active-backup\"\ndhcp4 = true\n[bond0.monitoring]\nmiimon-frequency-ms = 100\nmiimon-updelay-ms = 100\nmiimon-downdelay-ms = 100\n", "bond0.interfaces", "required"},
		{"bond member by mac", "version = 3\n[bond0]\nkind = \"bond\"\nmode = \"active-backup\"\ninterfaces = [\"0e:b3:69:44:b6:33\"]\ndhcp4 = true\n[bond0.monitoring]\nmiimon-frequency-ms = 100\nmiimon-updelay-ms = 100\nmiimon-downdelay-ms = 100\n", "bond0.interfaces[0]", "not given by MAC"},
		{"bond min-links", "version = 3\n[bond0]\nkind = \"bond\"\nmode = \"active-backup\"\ninterfaces = [\"eth1\"]\nmin-links = 2\ndhcp4 = true\n[bond0.monitoring]\nmiimon-frequency-ms = 100\nmiimon-updelay-ms = 100\nmiimon-downdelay-ms = 100\n", "bond0.min-links", "more than the bond's 1 interfaces"},
		{"bond without monitoring", "version = 3\n[bond0]\nkind = \"bond\"\nmode = \"active-backup\"\ninterfaces = [\"eth1\"]\ndhcp4 = true\n", "bond0.monitoring", "required"},
		{"bond mixed monitoring", "version = 3\n[bond0]\nkind = \"bond\"\nmode = \"active-backup\"\ninterfaces = [\"eth1\"]\ndhcp4 = true\n[bond0.monitoring]\nmiimon-frequency-ms = 100\narpmon-interval-ms = 100\n", "bond0.monitoring", "not both"},
		{"miimon incomplete", "version = 3\n[bond0]\nkind = \"bond\"\nmode = \"active-backup\"\ninterfaces = [\"eth1\"]\ndhcp4 = true\n[bond0.monitoring]\nmiimon-frequency-ms = 100\n", "bond0.monitoring.miimon-updelay-ms", "required with MII"},
		{"miimon zero", "version = 3\n[bond0]\nkind = \"bond\"\nmode = \"active-backup\"\ninterfaces = [\"eth1\"]\ndhcp4 = true\n[bond0.monitoring]\nmiimon-frequency-ms = 0\nmiimon-updelay-ms = 0\nmiimon-downdelay-ms = 0\n", "bond0.monitoring.miimon-frequency-ms", "turns MII monitoring off"},
		{"miimon delays below frequency", "version = 3\n[bond0]\nkind = \"bond\"\nmode = \"active-backup\"\ninterfaces = [\"eth1\"]\ndhcp4 = true\n[bond0.monitoring]\nmiimon-frequency-ms = 100\nmiimon-updelay-ms = 50\nmiimon-downdelay-ms = 100\n", "bond0.monitoring", "at least miimon-frequency-ms"},
		{"arpmon validate", "version = 3\n[bond0]\nkind = \"bond\"\nmode = \"active-backup\"\ninterfaces = [\"eth1\"]\ndhcp4 = true\n[bond0.monitoring]\narpmon-interval-ms = 100\narpmon-validate = \"some\"\narpmon-targets = [\"10.0.0.1\"]\n", "bond0.monitoring.arpmon-validate", "expected all, none, active or backup"},
		{"arpmon no targets", "version = 3\n[bond0]\nkind = \"bond\"\nmode = \"active-backup\"\ninterfaces = [\"eth1\"]\ndhcp4 = true\n[bond0.monitoring]\narpmon-interval-ms = 100\narpmon-validate = \"all\"\narpmon-targets = []\n", "bond0.monitoring.arpmon-targets", "between 1 and 16"},
		{"arpmon v6 target", "version = 3\n[bond0]\nkind = \"bond\"\nmode = \"active-backup\"\ninterfaces = [\"eth1\"]\ndhcp4 = true\n[bond0.monitoring]\narpmon-interval-ms = 100\narpmon-validate = \"all\"\narpmon-targets = [\"2001:db8::1\"]\n", "bond0.monitoring.arpmon-targets[0]", "not an IPv4 address"},
		{"bond member configured alone", "version = 3\n[eth1]\ndhcp4 = true\n[bond0]\nkind = \"bond\"\nmode = \"active-backup\"\ninterfaces = [\"eth1\"]\ndhcp4 = true\n[bond0.monitoring]\nmiimon-frequency-ms = 100\nmiimon-updelay-ms = 100\nmiimon-downdelay-ms = 100\n", "bond0.interfaces[0]", "cannot be configured on its own"},
		{"vlan without device", "version = 3\n[v5]\nkind = \"vlan\"\nid = 5\ndhcp4 = true\n", "v5.device", "required"},
		{"vlan without id", "version = 3\n[v5]\nkind = \"vlan\"\ndevice = \"eth0\"\ndhcp4 = true\n", "v5.id", "required"},
		{"vlan id range", "version = 3\n[v5]\nkind = \"vlan\"\ndevice = \"eth0\"\nid = 4095\ndhcp4 = true\n", "v5.id", "out of range 0 to 4094"},
		{"vlan device by mac", "version = 3\n[v5]\nkind = \"vlan\"\ndevice = \"0e:b3:69:44:b6:33\"\nid = 5\ndhcp4 = true\n", "v5.device", "not given by MAC"},
		{"vlan setting on interface", "version = 3\n[eth0]\ndhcp4 = true\nid = 5\n", "eth0.id", "not a setting of a plain interface"},
		{"same mac twice", "version = 3\n[\"0e:b3:69:44:b6:33\"]\ndhcp4 = true\n[\"0e-b3-69-44-b6-33\"]\ndhcp4 = true\n", "0e-b3-69-44-b6-33", "the same MAC address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.toml))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want a net.toml error", err)
			}
			for _, p := range e.Problems {
				if p.Field == tt.field && strings.Contains(p.Reason, tt.reason) {
					if !strings.HasPrefix(err.Error(), "net.toml") {
						t.Errorf("message %q does not start with net.toml", err)
					}
					return
				}
			}
			t.Fatalf("no problem at %s containing %q in:\n%v", tt.field, tt.reason, err)
		})
	}
}

// TestParseReportsEveryProblem: a file with several mistakes gets them all,
// in file order, in one message.
func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse([]byte("version = 2\n[eth0]\ndhcp4 = \"on\"\n[eth1.static4]\naddresses = [\"x\"]\n"))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	i, j := strings.Index(msg, "eth0.dhcp4"), strings.Index(msg, "eth1.static4.addresses[0]")
	if !strings.Contains(msg, "problems") || i < 0 || j < 0 || i > j {
		t.Fatalf("message:\n%s", msg)
	}
}

func TestFromCmdline(t *testing.T) {
	tests := []struct {
		cmdline string
		want    string // "" means no configuration
		err     string
	}{
		{"console=ttyS0 quiet", "", ""},
		{"netdog.default-interface=eth0:dhcp4,dhcp6? quiet", "eth0 dhcp4 dhcp6?", ""},
		{"netdog.default-interface=ens5:dhcp6", "ens5 dhcp6", ""},
		{"netdog.default-interface=eth0:dhcp4? ", "eth0 dhcp4?", ""},
		{"netdog.default-interface=eth0", "", "expected interface:options"},
		{"netdog.default-interface=eth0:", "", "expected interface:options"},
		{"netdog.default-interface=eth0:static", "", "unknown option \"static\""},
		{"netdog.default-interface=eth0:dhcp4,dhcp4", "", "dhcp4 given twice"},
		{"netdog.default-interface=a/b:dhcp4", "", "must not contain"},
		{"netdog.default-interface=eth0:dhcp4 netdog.default-interface=eth1:dhcp4", "", "given 2 times"},
	}
	for _, tt := range tests {
		c, err := FromCmdline(tt.cmdline)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err = %v, want %q", tt.cmdline, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.cmdline, err)
			continue
		}
		got := ""
		if c != nil {
			d := c.Devices[0]
			got = d.Name
			if d.DHCP4 != nil {
				got += " dhcp4" + map[bool]string{true: "?"}[d.DHCP4.Optional]
			}
			if d.DHCP6 != nil {
				got += " dhcp6" + map[bool]string{true: "?"}[d.DHCP6.Optional]
			}
			if !d.Primary || c.Source != "kernel command line" {
				t.Errorf("%q: %+v", tt.cmdline, c)
			}
		}
		if got != tt.want {
			t.Errorf("%q = %q, want %q", tt.cmdline, got, tt.want)
		}
	}
}

func TestDefault(t *testing.T) {
	c := Default("eth0")
	d := c.Primary()
	if d.Name != "eth0" || d.DHCP4 == nil || d.DHCP4.Optional || d.DHCP6 == nil || !d.DHCP6.Optional {
		t.Fatalf("default = %+v", d)
	}
}
