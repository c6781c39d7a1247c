package testguest

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestFirstEthernet(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	lo := net.Interface{Index: 1, Name: "lo", Flags: net.FlagLoopback | net.FlagUp}
	sit := net.Interface{Index: 2, Name: "sit0", HardwareAddr: net.HardwareAddr{0, 0, 0, 0}}
	eth0 := net.Interface{Index: 3, Name: "eth0", HardwareAddr: mac}
	ens4 := net.Interface{Index: 4, Name: "ens4", HardwareAddr: mac}
	tests := []struct {
		name string
		in   []net.Interface
		want string // "" = none
	}{
		{"only loopback", []net.Interface{lo}, ""},
		{"nothing", nil, ""},
		{"skips loopback and tunnels", []net.Interface{lo, sit, eth0}, "eth0"},
		{"lowest index wins whatever the order", []net.Interface{ens4, lo, eth0}, "eth0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := firstEthernet(tc.in)
			if tc.want == "" {
				if ok {
					t.Fatalf("got %s, want none", got.Name)
				}
				return
			}
			if !ok || got.Name != tc.want {
				t.Fatalf("got %q (ok %v), want %q", got.Name, ok, tc.want)
			}
		})
	}
}

func TestBroadcast(t *testing.T) {
	tests := []struct{ prefix, want string }{
		{"10.0.2.15/24", "10.0.2.255"},
		{"192.168.7.1/16", "192.168.255.255"},
		{"10.1.2.3/8", "10.255.255.255"},
		{"172.16.5.9/30", "172.16.5.11"},
	}
	for _, tc := range tests {
		b := broadcast(netip.MustParsePrefix(tc.prefix))
		if got := netip.AddrFrom4(b).String(); got != tc.want {
			t.Errorf("broadcast(%s) = %s, want %s", tc.prefix, got, tc.want)
		}
	}
}

func TestConfigureRefusesBadInput(t *testing.T) {
	tests := []struct {
		name string
		cfg  NetConfig
	}{
		{"no address", NetConfig{}},
		{"IPv6 address", NetConfig{Address: netip.MustParsePrefix("fd00::2/64")}},
		{"IPv6 gateway", NetConfig{Address: QEMUGuestPrefix, Gateway: netip.MustParseAddr("fd00::1")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Configure(context.Background(), tc.cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestWaitForInterfaceGivesUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := WaitForInterface(ctx, "no-such-if0", 50*time.Millisecond)
	if err == nil {
		t.Fatal("found an interface that does not exist")
	}
}
