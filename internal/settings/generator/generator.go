// Package generator owns Gantry's own setting generators, run by sundog
// through the settings-generator command: the update wave seed, the host
// name and the node's IP address. Each prints a JSON value, or exits 2 when
// it has nothing to offer.
package generator

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/gantry-os/gantry/pkg/model"
)

// ErrNothing means the generator has no value to offer (sundog skips it).
var ErrNothing = errors.New("no value to generate")

// Seed returns a random wave seed in 0..2047.
func Seed() (uint32, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("read random bytes: %w", err)
	}
	return binary.LittleEndian.Uint32(b[:]) % (model.MaxUpdateSeed + 1), nil
}

// Net describes the host's network for the generators; tests give their own.
type Net struct {
	// RouteFile is /proc/net/route, used to find the default route's interface.
	RouteFile string
	// Lookup resolves an address to names (net.DefaultResolver.LookupAddr).
	Lookup func(ctx context.Context, addr string) ([]string, error)
}

// System is the running host's network.
func System() Net {
	return Net{RouteFile: "/proc/net/route", Lookup: net.DefaultResolver.LookupAddr}
}

// NodeIP returns the primary IPv4 address: the first global address of the
// default route's interface, else of any interface that is up.
func (n Net) NodeIP() (netip.Addr, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list interfaces: %w", err)
	}
	def := defaultRouteInterface(n.RouteFile)
	var fallback netip.Addr
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil || !p.Addr().Is4() || !p.Addr().IsGlobalUnicast() {
				continue
			}
			if ifc.Name == def {
				return p.Addr(), nil
			}
			if !fallback.IsValid() {
				fallback = p.Addr()
			}
		}
	}
	if fallback.IsValid() {
		return fallback, nil
	}
	return netip.Addr{}, ErrNothing
}

// defaultRouteInterface reads the interface of the IPv4 default route.
func defaultRouteInterface(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 2 && fields[1] == "00000000" {
			return fields[0]
		}
	}
	return ""
}

// Hostname returns the name the node's address resolves to, or one built
// from the address (ip-10-0-0-5) when it resolves to nothing usable.
func (n Net) Hostname(ctx context.Context) (string, error) {
	ip, err := n.NodeIP()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if names, err := n.Lookup(ctx, ip.String()); err == nil {
		for _, name := range names {
			name = strings.ToLower(strings.TrimSuffix(name, "."))
			if model.ValidLinuxHostname(name).Validate() == nil {
				return name, nil
			}
		}
	}
	return "ip-" + strings.ReplaceAll(ip.String(), ".", "-"), nil
}
