//go:build linux

package testguest

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gantry-os/gantry/internal/testsupport"
)

var errSkip = errors.New("skip")

// inNetns runs f on a thread moved into a new, empty network namespace.
// The thread is never unlocked, so it dies with the goroutine and the
// namespace with it.
func inNetns(t *testing.T, f func() error) {
	t.Helper()
	testsupport.RequireRoot(t, "a network namespace")
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Logf("unshare: %v", err)
			done <- errSkip
			return
		}
		done <- f()
	}()
	if err := <-done; errors.Is(err, errSkip) {
		testsupport.Missing(t, "cannot create a network namespace",
			"a kernel and container that allow unshare(CLONE_NEWNET) (a container needs --privileged)")
	} else if err != nil {
		t.Fatal(err)
	}
}

// TestConfigureRealNetlink configures the loopback interface of a fresh
// network namespace (the only interface there) through real rtnetlink, twice,
// and checks the link, the address and the default route.
func TestConfigureRealNetlink(t *testing.T) {
	inNetns(t, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cfg := NetConfig{Interface: "lo", Address: QEMUGuestPrefix, Gateway: QEMUGateway}
		for i := range 2 { // the second run finds everything in place
			name, err := Configure(ctx, cfg)
			if err != nil {
				t.Errorf("run %d: %v", i+1, err)
				return nil
			}
			if name != "lo" {
				t.Errorf("configured %q", name)
			}
		}
		ifi, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		if ifi.Flags&net.FlagUp == 0 {
			t.Error("lo is not up")
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		found := false
		for _, a := range addrs {
			if a.String() == "10.0.2.15/24" {
				found = true
			}
		}
		if !found {
			t.Errorf("addresses %v lack 10.0.2.15/24", addrs)
		}
		gw, oif, err := defaultRoute()
		if err != nil {
			return err
		}
		if gw != QEMUGateway || oif != ifi.Index {
			t.Errorf("default route via %v dev %d, want via %v dev %d", gw, oif, QEMUGateway, ifi.Index)
		}
		return nil
	})
}

// TestConfigureWaitsForInterface: an interface that never appears ends in
// an error naming what is missing, once ctx is done.
func TestConfigureWaitsForInterface(t *testing.T) {
	inNetns(t, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := Configure(ctx, NetConfig{Address: QEMUGuestPrefix, Poll: 50 * time.Millisecond})
		if err == nil {
			t.Error("configured a namespace without an Ethernet interface")
		} else if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v does not say it gave up", err)
		}
		return nil
	})
}

// defaultRoute reads the main table's IPv4 default route.
func defaultRoute() (netip.Addr, int, error) {
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETROUTE, syscall.AF_INET)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWROUTE || len(m.Data) < syscall.SizeofRtMsg {
			continue
		}
		if m.Data[1] != 0 || m.Data[4] != syscall.RT_TABLE_MAIN { // dst_len, table
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			return netip.Addr{}, 0, err
		}
		var gw netip.Addr
		oif := 0
		for _, a := range attrs {
			switch a.Attr.Type {
			case syscall.RTA_GATEWAY:
				gw, _ = netip.AddrFromSlice(a.Value)
			case syscall.RTA_OIF:
				oif = int(binary.NativeEndian.Uint32(a.Value))
			}
		}
		return gw, oif, nil
	}
	return netip.Addr{}, 0, errors.New("no default route")
}
