// Command guestinit is /init of the initramfs TestBridgeInGuest boots: a
// stand-in for the node's userspace. It mounts the API file systems, loads
// qemu_fw_cfg and the NIC driver, gives the interface QEMU's user-network
// address (a node's networkd would take it by DHCP), serves a tiny API on
// /run/api.sock that reports the fw_cfg user data, and runs the real
// api-bridge exactly as the unit does.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gantry-os/gantry/internal/devtools/apibridge"
	"github.com/gantry-os/gantry/internal/devtools/qemu/testguest"
)

func main() {
	for _, m := range []struct{ src, dir, typ string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}, {"tmpfs", "/run", "tmpfs"},
	} {
		os.MkdirAll(m.dir, 0o755)
		unix.Mount(m.src, m.dir, m.typ, 0, "")
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	ctx := context.Background()
	loaded, err := testguest.ModuleLoader{Dir: "/lib/modules"}.Load(ctx, "qemu_fw_cfg", "virtio_pci", "virtio_net")
	log.Info("guestinit: modules", "loaded", loaded, "error", err)
	go func() {
		nctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		name, err := testguest.Configure(nctx, testguest.NetConfig{
			Address: netip.MustParsePrefix("10.0.2.15/24"), Gateway: netip.MustParseAddr("10.0.2.2")})
		log.Info("guestinit: network", "interface", name, "error", err)
	}()
	var ud []byte
	for range 50 {
		if ud, err = os.ReadFile("/sys/firmware/qemu_fw_cfg/by_name/opt/gantry/user-data/raw"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	ln, err := net.Listen("unix", "/run/api.sock")
	if err != nil {
		log.Error("guestinit: listen", "error", err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"variant_id":"guestinit","user_data":%q}`, strings.TrimSpace(string(ud)))
	}))
	// The flags of api-bridge.service.
	code := apibridge.Main(ctx, []string{"--listen", ":8081", "--socket-path", "/run/api.sock"})
	log.Error("guestinit: api-bridge ended", "code", code)
	select {}
}
