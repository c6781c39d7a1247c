package qemu

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// NIC is a network interface after the guest's first: a virtio NIC on a
// user-mode network of its own (QEMU's DHCP leases it .15 of Net, unless
// the node's net.toml gives it a static address).
type NIC struct {
	// Net is the user network's subnet, such as 10.0.3.0/24.
	Net netip.Prefix
	// Tap, when set, puts the NIC on this tap device of the host instead
	// of a user network (Net, Forward and Ports are then unused): the host
	// reaches the guest's addresses on it directly, as a cluster's
	// apiserver reaches a kubelet. Making the device needs root.
	Tap string
	// MAC is the NIC's address; empty lets QEMU choose (52:54:00:12:34:56
	// plus the NIC's index).
	MAC string
	// Forward, when set, forwards HostPort on the host's 127.0.0.1 to the
	// guest's api-bridge port on this address of the NIC: the host reaches
	// the API only when the guest has this address on this interface.
	Forward  netip.Addr
	HostPort int
	// Ports is how many guest interfaces share the network (default 1):
	// more than one are on a QEMU hub with it, as the members of a bond on
	// one switch. Their MACs count up from MAC.
	Ports int
}

// ParseNIC reads the --nic flag: SUBNET[,mac=MAC].
func ParseNIC(s string) (NIC, error) {
	fields := strings.Split(s, ",")
	var n NIC
	var err error
	if n.Net, err = netip.ParsePrefix(fields[0]); err != nil {
		return n, fmt.Errorf("--nic %q: the first field must be the network's subnet, like 10.0.3.0/24", s)
	}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "mac":
			n.MAC = v
		default:
			return n, fmt.Errorf("--nic %q: unknown option %q (mac=)", s, k)
		}
	}
	return n, n.check()
}

func (n NIC) check() error {
	if n.Tap != "" {
		if n.Forward.IsValid() || n.Ports > 1 {
			return fmt.Errorf("tap NIC %s: no forwards or ports", n.Tap)
		}
		return nil
	}
	if !n.Net.IsValid() || !n.Net.Addr().Is4() || n.Net.Bits() > 29 {
		return fmt.Errorf("network %v: want an IPv4 subnet of /29 or larger", n.Net)
	}
	if n.MAC != "" {
		if m, err := net.ParseMAC(n.MAC); err != nil || len(m) != 6 {
			return fmt.Errorf("MAC %q: want six bytes like 52:54:00:12:34:57", n.MAC)
		}
	}
	if n.Forward.IsValid() && !n.Net.Contains(n.Forward) {
		return fmt.Errorf("forward address %v is outside %v", n.Forward, n.Net)
	}
	if n.Forward.IsValid() && (n.HostPort <= 0 || n.HostPort > 65535) {
		return fmt.Errorf("forward to %v needs a host port", n.Forward)
	}
	return nil
}

func (n NIC) args(index, guestPort int) []string {
	id := "n" + strconv.Itoa(index)
	if n.Tap != "" {
		dev := "virtio-net-pci,netdev=" + id
		if n.MAC != "" {
			dev += ",mac=" + n.MAC
		}
		return []string{"-netdev", fmt.Sprintf("tap,id=%s,ifname=%s,script=no,downscript=no", id, n.Tap), "-device", dev}
	}
	netdev := fmt.Sprintf("user,id=%s,net=%s", id, n.Net.Masked())
	if n.Forward.IsValid() {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-%s:%d", n.HostPort, n.Forward, guestPort)
	}
	if n.Ports <= 1 {
		dev := "virtio-net-pci,netdev=" + id
		if n.MAC != "" {
			dev += ",mac=" + n.MAC
		}
		return []string{"-netdev", netdev, "-device", dev}
	}
	// A hub: one port on the user network, one per guest interface.
	a := []string{"-netdev", netdev, "-netdev", fmt.Sprintf("hubport,id=%s-up,hubid=%d,netdev=%s", id, index, id)}
	for p := 0; p < n.Ports; p++ {
		port := fmt.Sprintf("%s-p%d", id, p)
		dev := "virtio-net-pci,netdev=" + port
		if n.MAC != "" {
			m, _ := net.ParseMAC(n.MAC)
			m[5] += byte(p)
			dev += ",mac=" + m.String()
		}
		a = append(a, "-netdev", fmt.Sprintf("hubport,id=%s,hubid=%d", port, index), "-device", dev)
	}
	return a
}

// Forward is a TCP port forward from the host's 127.0.0.1 to the guest.
type Forward struct {
	HostPort, GuestPort int
}

// ParseForward reads HOST:GUEST, such as 2222:22.
func ParseForward(s string) (Forward, error) {
	h, g, ok := strings.Cut(s, ":")
	hp, err1 := strconv.Atoi(h)
	gp, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil || hp < 1 || hp > 65535 || gp < 1 || gp > 65535 {
		return Forward{}, fmt.Errorf("port forward %q: want HOST-PORT:GUEST-PORT, such as 2222:22", s)
	}
	return Forward{HostPort: hp, GuestPort: gp}, nil
}

func forwardArgs(fs []Forward) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, ",hostfwd=tcp:127.0.0.1:%d-:%d", f.HostPort, f.GuestPort)
	}
	return b.String()
}
