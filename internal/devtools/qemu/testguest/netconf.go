package testguest

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"time"
)

// QEMU user-mode networking's fixed addresses: the first (and only) address
// its DHCP server hands out, its gateway, and its DNS forwarder.
var (
	QEMUGuestPrefix = netip.MustParsePrefix("10.0.2.15/24")
	QEMUGateway     = netip.MustParseAddr("10.0.2.2")
	QEMUDNS         = netip.MustParseAddr("10.0.2.3")
)

// NetConfig is a static IPv4 configuration for one interface.
type NetConfig struct {
	// Interface is the interface's name; empty means the first Ethernet
	// interface (non-loopback, 6-byte hardware address) by index.
	Interface string
	// Address is the interface's address and prefix length. Required.
	Address netip.Prefix
	// Gateway, when valid, becomes the default route through Interface.
	Gateway netip.Addr
	// Poll is how often to look again for the interface while it has not
	// appeared; zero means 200ms.
	Poll time.Duration
}

// Configure brings cfg's interface up, adds its address and default route,
// and returns the interface's name. It waits for the interface to appear
// (a driver still loading) until ctx is done. Addresses and routes that
// already exist are left as they are, so running it twice is harmless.
func Configure(ctx context.Context, cfg NetConfig) (string, error) {
	if !cfg.Address.IsValid() || !cfg.Address.Addr().Is4() {
		return "", fmt.Errorf("configure network: address %v: want an IPv4 prefix such as 10.0.2.15/24", cfg.Address)
	}
	if cfg.Gateway.IsValid() && !cfg.Gateway.Is4() {
		return "", fmt.Errorf("configure network: gateway %v is not IPv4", cfg.Gateway)
	}
	ifi, err := WaitForInterface(ctx, cfg.Interface, cfg.Poll)
	if err != nil {
		return "", fmt.Errorf("configure network: %w", err)
	}
	if err := configureLink(ifi.Index, cfg.Address, cfg.Gateway); err != nil {
		return ifi.Name, fmt.Errorf("configure network on %s: %w", ifi.Name, err)
	}
	return ifi.Name, nil
}

// WaitForInterface returns the interface called name, or with an empty name
// the first Ethernet interface, polling every poll (zero: 200ms) until it
// exists or ctx is done.
func WaitForInterface(ctx context.Context, name string, poll time.Duration) (net.Interface, error) {
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		ifi, err := findInterface(name)
		if err == nil {
			return ifi, nil
		}
		select {
		case <-ctx.Done():
			return net.Interface{}, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

func findInterface(name string) (net.Interface, error) {
	if name != "" {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return net.Interface{}, fmt.Errorf("interface %s: %w", name, err)
		}
		return *ifi, nil
	}
	all, err := net.Interfaces()
	if err != nil {
		return net.Interface{}, fmt.Errorf("list interfaces: %w", err)
	}
	if ifi, ok := firstEthernet(all); ok {
		return ifi, nil
	}
	names := make([]string, 0, len(all))
	for _, i := range all {
		names = append(names, i.Name)
	}
	return net.Interface{}, fmt.Errorf("no Ethernet interface (have %v; is the NIC's driver loaded?)", names)
}

// firstEthernet picks the Ethernet interface with the lowest index.
func firstEthernet(all []net.Interface) (net.Interface, bool) {
	sorted := append([]net.Interface(nil), all...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Index < sorted[j].Index })
	for _, ifi := range sorted {
		if ifi.Flags&net.FlagLoopback == 0 && len(ifi.HardwareAddr) == 6 {
			return ifi, true
		}
	}
	return net.Interface{}, false
}

// broadcast is the IPv4 broadcast address of p's network.
func broadcast(p netip.Prefix) [4]byte {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := binary.BigEndian.Uint32(b[:]) | host
	binary.BigEndian.PutUint32(b[:], v)
	return b
}
