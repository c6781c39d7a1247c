// Package netconfig owns the node's network configuration as a user writes
// it: Bottlerocket's net.toml (versions 1 to 3: DHCP, static addresses and
// routes, bonds, VLANs, interfaces by MAC address), the kernel command
// line's netdog.default-interface=, and the default when neither is given.
// It parses and validates; every error names the field (eth1.static4.
// addresses[0]) and the reason. Package networkd turns a Config into
// systemd-networkd's files.
package netconfig

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Kind is the kind of a network device.
type Kind string

// The device kinds net.toml version 3 knows.
const (
	KindInterface Kind = "interface"
	KindBond      Kind = "bond"
	KindVLAN      Kind = "vlan"
)

// Config is a validated network configuration.
type Config struct {
	// Version is the net.toml version it came from (1 to 3); the kernel
	// command line and the default are version 1.
	Version int
	// Source says where it came from, for messages ("net.toml",
	// "kernel command line", "default").
	Source string
	// Devices in the order the file names them.
	Devices []Device
}

// Device is one interface, bond or VLAN.
type Device struct {
	// Name is the interface or virtual device name; empty when MAC is set.
	Name string
	// MAC identifies an interface by its address (version 3).
	MAC     net.HardwareAddr
	Kind    Kind
	Primary bool
	DHCP4   *DHCP4
	DHCP6   *DHCP6
	Static4 []netip.Prefix
	Static6 []netip.Prefix
	Routes  []Route
	// MTU is the link's MTU in bytes; 0 leaves the kernel's.
	MTU  uint32
	Bond *Bond
	VLAN *VLAN
}

// ID is how the file names the device: its name, or its MAC address.
func (d Device) ID() string {
	if d.MAC != nil {
		return d.MAC.String()
	}
	return d.Name
}

// HasAddressing reports whether the device gets addresses of its own.
func (d Device) HasAddressing() bool {
	return d.DHCP4 != nil || d.DHCP6 != nil || len(d.Static4) > 0 || len(d.Static6) > 0
}

// DHCP4 is an enabled DHCPv4 client.
type DHCP4 struct {
	// Optional: ask for a lease, but do not wait for one to call the
	// interface configured.
	Optional bool
	// RouteMetric is the metric of the lease's routes; nil leaves networkd's.
	RouteMetric *uint32
}

// DHCP6 is an enabled DHCPv6 client.
type DHCP6 struct {
	Optional bool
}

// Route is a static route.
type Route struct {
	// To is the destination; Default routes have the zero prefix of their
	// family (0.0.0.0/0 or ::/0).
	To      netip.Prefix
	Default bool
	// From is the preferred source address; zero when not set.
	From netip.Addr
	// Via is the gateway; zero means the destination is on the link.
	Via    netip.Addr
	Metric *uint32
}

// Bond is an active-backup bond over Interfaces (the first is the
// primary member).
type Bond struct {
	Mode       string
	MinLinks   int
	Interfaces []string
	MII        *MIIMonitor
	ARP        *ARPMonitor
}

// MIIMonitor is MII link monitoring, in milliseconds.
type MIIMonitor struct {
	FrequencyMS, UpDelayMS, DownDelayMS uint32
}

// ARPMonitor is ARP link monitoring.
type ARPMonitor struct {
	IntervalMS uint32
	Validate   string
	Targets    []netip.Addr
}

// VLAN is a tagged VLAN on Device.
type VLAN struct {
	Device string
	ID     int
}

// Primary returns the primary device: the one marked primary, else the
// first. Nil when there are no devices.
func (c *Config) Primary() *Device {
	for i := range c.Devices {
		if c.Devices[i].Primary {
			return &c.Devices[i]
		}
	}
	if len(c.Devices) == 0 {
		return nil
	}
	return &c.Devices[0]
}

// Default is the configuration of a node that names none: DHCPv4 on the
// interface, and DHCPv6 where the network offers it (optional, so the node
// does not wait for it).
func Default(iface string) *Config {
	return &Config{Version: 1, Source: "default", Devices: []Device{{
		Name: iface, Kind: KindInterface, Primary: true,
		DHCP4: &DHCP4{}, DHCP6: &DHCP6{Optional: true},
	}}}
}

// DefaultInterfaceParam is the kernel command line parameter naming the
// default interface: netdog.default-interface=eth0:dhcp4,dhcp6?
const DefaultInterfaceParam = "netdog.default-interface"

// FromCmdline reads netdog.default-interface= from a kernel command line.
// It returns nil and no error when the parameter is absent.
func FromCmdline(cmdline string) (*Config, error) {
	var values []string
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, DefaultInterfaceParam+"="); ok {
			values = append(values, v)
		}
	}
	switch len(values) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("%s: given %d times, expected once", DefaultInterfaceParam, len(values))
	}
	name, opts, ok := strings.Cut(values[0], ":")
	if !ok || opts == "" {
		return nil, fmt.Errorf("%s=%s: expected interface:options, for example eth0:dhcp4,dhcp6?", DefaultInterfaceParam, values[0])
	}
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("%s: interface %q: %w", DefaultInterfaceParam, name, err)
	}
	d := Device{Name: name, Kind: KindInterface, Primary: true}
	for _, o := range strings.Split(opts, ",") {
		optional := strings.HasSuffix(o, "?")
		switch strings.TrimSuffix(o, "?") {
		case "dhcp4":
			if d.DHCP4 != nil {
				return nil, fmt.Errorf("%s: dhcp4 given twice", DefaultInterfaceParam)
			}
			d.DHCP4 = &DHCP4{Optional: optional}
		case "dhcp6":
			if d.DHCP6 != nil {
				return nil, fmt.Errorf("%s: dhcp6 given twice", DefaultInterfaceParam)
			}
			d.DHCP6 = &DHCP6{Optional: optional}
		default:
			return nil, fmt.Errorf("%s: unknown option %q (dhcp4 or dhcp6, with ? when optional)", DefaultInterfaceParam, o)
		}
	}
	return &Config{Version: 1, Source: "kernel command line", Devices: []Device{d}}, nil
}

// checkName applies the kernel's rules for a network device name.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name")
	case len(name) > 15:
		return fmt.Errorf("longer than 15 characters")
	case strings.ContainsAny(name, "./ \t\r\n"):
		return fmt.Errorf("must not contain '.', '/' or white space")
	case name == "lo":
		return fmt.Errorf("the loopback interface is not configurable")
	}
	return nil
}
