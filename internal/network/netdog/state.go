package netdog

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Host is the running system's network as netdog reads it: the files of
// Paths plus the interfaces' addresses. Tests give their own Addrs.
type Host struct {
	Paths
	// Addrs lists an interface's addresses with their prefix lengths.
	Addrs func(iface string) ([]netip.Prefix, error)
	// LookupAddr resolves an address to names (reverse DNS).
	LookupAddr func(ctx context.Context, addr string) ([]string, error)
}

// SystemHost is the node's.
func SystemHost() Host {
	return Host{Paths: System(), Addrs: interfaceAddrs, LookupAddr: net.DefaultResolver.LookupAddr}
}

func interfaceAddrs(name string) ([]netip.Prefix, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", name, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// Link is what networkd knows of an interface.
type Link struct {
	Name string
	// Addresses are the interface's global addresses.
	Addresses []netip.Prefix
	// Gateway4 and Gateway6 are the default routes' gateways through the
	// interface (zero when there is none).
	Gateway4, Gateway6 netip.Addr
	// DefaultRoute4 and DefaultRoute6: there is a default route through
	// the interface, with or without a gateway.
	DefaultRoute4, DefaultRoute6 bool
	// DNS, Domains and Hostname are what DHCP (or router advertisements)
	// gave, as networkd recorded them.
	DNS      []netip.Addr
	Domains  []string
	Hostname string
	// OperState is networkd's operational state (routable, degraded, …).
	OperState string
}

// ErrNoPrimary means netdog has not chosen a primary interface (it has
// not run, or the interface is missing).
var ErrNoPrimary = errors.New("no primary interface (netdog generate-net-config has not run, and there is no default route)")

// Primary reads the primary interface's state: the one netdog chose, else
// (on a machine where netdog did not configure the network, such as a
// local development node) the IPv4 default route's interface.
func (h Host) Primary() (*Link, error) {
	name := h.PrimaryInterface()
	if name == "" {
		name = defaultRouteInterface(filepath.Join(h.ProcNet, "route"))
	}
	if name == "" {
		return nil, ErrNoPrimary
	}
	return h.Link(name)
}

// defaultRouteInterface is the interface of the first IPv4 default route.
func defaultRouteInterface(path string) string {
	iface, _, _ := defaultRoute4(path, "")
	return iface
}

// Link reads one interface's state.
func (h Host) Link(name string) (*Link, error) {
	l := &Link{Name: name}
	addrs, err := h.Addrs(name)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", name, err)
	}
	for _, a := range addrs {
		if a.Addr().IsGlobalUnicast() {
			l.Addresses = append(l.Addresses, a)
		}
	}
	_, l.Gateway4, l.DefaultRoute4 = defaultRoute4(filepath.Join(h.ProcNet, "route"), name)
	l.Gateway6, l.DefaultRoute6 = defaultRoute6(filepath.Join(h.ProcNet, "ipv6_route"), name)
	idx, err := readInt(filepath.Join(h.SysClassNet, name, "ifindex"))
	if err != nil {
		return l, nil
	}
	link := readEnvFile(filepath.Join(h.NetifDir, "links", strconv.Itoa(idx)))
	l.OperState = link["OPER_STATE"]
	for _, s := range strings.Fields(link["DNS"]) {
		// networkd may write "addr%ifindex#server-name"; keep the address.
		s, _, _ = strings.Cut(s, "#")
		s, _, _ = strings.Cut(s, "%")
		if a, err := netip.ParseAddr(s); err == nil {
			l.DNS = append(l.DNS, a)
		}
	}
	l.Domains = strings.Fields(link["DOMAINS"])
	lease := readEnvFile(filepath.Join(h.NetifDir, "leases", strconv.Itoa(idx)))
	l.Hostname = lease["HOSTNAME"]
	if len(l.Domains) == 0 && lease["DOMAINNAME"] != "" {
		l.Domains = []string{lease["DOMAINNAME"]}
	}
	return l, nil
}

// Online reports whether the link has an address and a default route.
func (l *Link) Online() bool {
	return len(l.Addresses) > 0 && (l.DefaultRoute4 || l.DefaultRoute6)
}

// String is the console's status line for the link.
func (l *Link) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", l.Name)
	if len(l.Addresses) == 0 {
		b.WriteString(" has no address")
	}
	for i, a := range l.Addresses {
		if i == 0 {
			b.WriteString(" ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(a.String())
	}
	switch {
	case l.Gateway4.IsValid():
		fmt.Fprintf(&b, ", default route via %s", l.Gateway4)
	case l.DefaultRoute4:
		b.WriteString(", default route on link")
	case l.Gateway6.IsValid():
		fmt.Fprintf(&b, ", default route via %s", l.Gateway6)
	case l.DefaultRoute6:
		b.WriteString(", default route on link")
	default:
		b.WriteString(", no default route")
	}
	if len(l.DNS) > 0 {
		s := make([]string, len(l.DNS))
		for i, a := range l.DNS {
			s[i] = a.String()
		}
		fmt.Fprintf(&b, ", DHCP name servers %s", strings.Join(s, " "))
	}
	return b.String()
}

// defaultRoute4 reads /proc/net/route for the first IPv4 default route
// through iface (any interface when iface is empty): its interface and
// gateway (zero when on the link).
func defaultRoute4(path, iface string) (string, netip.Addr, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", netip.Addr{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask …
		fs := strings.Fields(sc.Text())
		if len(fs) < 8 || (iface != "" && fs[0] != iface) || fs[1] != "00000000" || fs[7] != "00000000" {
			continue
		}
		gw, err := hex.DecodeString(fs[2])
		if err != nil || len(gw) != 4 {
			return fs[0], netip.Addr{}, true
		}
		// Little-endian in the file.
		a := netip.AddrFrom4([4]byte{gw[3], gw[2], gw[1], gw[0]})
		if a.IsUnspecified() {
			return fs[0], netip.Addr{}, true
		}
		return fs[0], a, true
	}
	return "", netip.Addr{}, false
}

// defaultRoute6 reads /proc/net/ipv6_route for the interface's default
// route (::/0) and its gateway.
func defaultRoute6(path, iface string) (netip.Addr, bool) {
	f, err := os.Open(path)
	if err != nil {
		return netip.Addr{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// dest destlen src srclen nexthop metric refcnt use flags iface
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || fs[9] != iface || fs[0] != strings.Repeat("0", 32) || fs[1] != "00" {
			continue
		}
		b, err := hex.DecodeString(fs[4])
		if err != nil || len(b) != 16 {
			return netip.Addr{}, true
		}
		a := netip.AddrFrom16([16]byte(b))
		if a.IsUnspecified() {
			return netip.Addr{}, true
		}
		return a, true
	}
	return netip.Addr{}, false
}

// readEnvFile reads networkd's KEY=value state files; a missing file is
// empty.
func readEnvFile(path string) map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = strings.Trim(v, "\"")
		}
	}
	return out
}
