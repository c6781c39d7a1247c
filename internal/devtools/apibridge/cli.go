package apibridge

import (
	"context"
	"fmt"
	"github.com/gantry-os/gantry/pkg/apiclient"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
)

// Defaults of the api-bridge command.
const (
	DefaultListen = ":8081"
)

// Config is one run of the guest-side bridge.
type Config struct {
	// Listen is the TCP address to accept connections on.
	Listen string
	// SocketPath is the settings API's Unix socket.
	SocketPath string
	// Modules are loaded (with their dependencies) from ModuleDir before
	// the network is configured; ModuleDir empty means the running
	// kernel's tree.
	Modules   []string
	ModuleDir string
	// Net, when Net.Address is valid, is configured once the interface
	// appears, waiting at most NetTimeout (zero: no limit but ctx).
	Net        NetConfig
	NetTimeout time.Duration
	Logger     *slog.Logger
}

// Run listens on cfg.Listen, sets up the network in the background, and
// forwards connections to cfg.SocketPath until ctx is done. A failure to
// set up the network is logged, not returned: the bridge keeps serving,
// and the log says what is missing.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("api-bridge: listen: %w", err)
	}
	log.Info("api-bridge listening", "address", ln.Addr().String(), "socket", cfg.SocketPath)

	setupDone := make(chan struct{})
	go func() {
		defer close(setupDone)
		setupNetwork(ctx, cfg, log)
	}()
	defer func() { <-setupDone }()

	fw := &Forwarder{Dial: UnixDialer(cfg.SocketPath), Logger: log}
	return fw.Serve(ctx, ln)
}

func setupNetwork(ctx context.Context, cfg Config, log *slog.Logger) {
	if len(cfg.Modules) > 0 {
		dir := cfg.ModuleDir
		if dir == "" {
			var err error
			if dir, err = DefaultModuleDir(); err != nil {
				log.Error("api-bridge: cannot load modules", "error", err)
			}
		}
		if dir != "" {
			loaded, err := ModuleLoader{Dir: dir}.Load(ctx, cfg.Modules...)
			if err != nil {
				log.Error("api-bridge: loading modules failed", "modules", cfg.Modules, "error", err)
			} else {
				log.Info("api-bridge: modules ready", "wanted", cfg.Modules, "inserted", loaded)
			}
		}
	}
	if !cfg.Net.Address.IsValid() {
		return
	}
	nctx := ctx
	if cfg.NetTimeout > 0 {
		var cancel context.CancelFunc
		nctx, cancel = context.WithTimeout(ctx, cfg.NetTimeout)
		defer cancel()
	}
	name, err := Configure(nctx, cfg.Net)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("api-bridge: network setup failed; the bridge is reachable only from inside the node", "error", err)
		}
		return
	}
	log.Info("api-bridge: network configured", "interface", name, "address", cfg.Net.Address.String(),
		"gateway", cfg.Net.Gateway.String())
}

// NewCommand returns the api-bridge command line.
func NewCommand() *cobra.Command {
	var (
		cfg                        = Config{Listen: DefaultListen, SocketPath: apiclient.DefaultSocketPath}
		address, gateway, logLevel string
		modules                    []string
	)
	cmd := &cobra.Command{
		Use:   "api-bridge",
		Short: "Forward TCP connections to the settings API's Unix socket (development nodes under QEMU)",
		Long: `api-bridge accepts TCP connections and forwards each one to the settings API's Unix
socket, so a host can reach a QEMU guest's API through user-mode networking's hostfwd.
There is no authentication: whoever reaches the port has the API, as root. It is for
development nodes booted by "gantry run", whose network is reachable only through QEMU
on the host's loopback.

With --address, it also brings the guest's interface up with that static address and
--gateway as default route, over rtnetlink (no udev, networkd or DHCP client needed).
With --load-modules, it first loads those kernel modules and their dependencies from
the running kernel's module tree (the NIC driver, when nothing else loads it).`,
		Example: `  # What the unit runs on a node booted by gantry run:
  api-bridge --load-modules virtio_pci,virtio_net --address 10.0.2.15/24 --gateway 10.0.2.2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := cli.Logger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return cli.UsageError{Err: err}
			}
			if address != "" {
				if cfg.Net.Address, err = netip.ParsePrefix(address); err != nil {
					return cli.UsageError{Err: fmt.Errorf("--address: %w", err)}
				}
			}
			if gateway != "" {
				if address == "" {
					return cli.UsageError{Err: fmt.Errorf("--gateway needs --address")}
				}
				if cfg.Net.Gateway, err = netip.ParseAddr(gateway); err != nil {
					return cli.UsageError{Err: fmt.Errorf("--gateway: %w", err)}
				}
			}
			for _, m := range modules {
				if m = strings.TrimSpace(m); m != "" {
					cfg.Modules = append(cfg.Modules, m)
				}
			}
			cfg.Logger = log
			ctx, stop := cli.SignalContext(cmd.Context())
			defer stop()
			return Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", DefaultListen, "TCP address to accept connections on")
	f.StringVar(&cfg.SocketPath, "socket-path", apiclient.DefaultSocketPath, "the settings API's Unix socket")
	f.StringVar(&address, "address", "", "static IPv4 address/prefix for the interface (none: leave the network alone)")
	f.StringVar(&gateway, "gateway", "", "default gateway through the interface (with --address)")
	f.StringVar(&cfg.Net.Interface, "interface", "", "interface to configure (default: the first Ethernet interface)")
	f.DurationVar(&cfg.NetTimeout, "network-timeout", 2*time.Minute, "how long to wait for the interface to appear")
	f.StringSliceVar(&modules, "load-modules", nil, "kernel modules to load first, with their dependencies (comma-separated)")
	f.StringVar(&cfg.ModuleDir, "module-dir", "", "module tree to load from (default: /usr/lib/modules/<running kernel>)")
	f.StringVar(&logLevel, "log-level", "info", "trace, debug, info, warn or error")
	return cmd
}

// Main runs the api-bridge command and returns the process exit code.
func Main(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewCommand(), args, os.Stderr)
}
