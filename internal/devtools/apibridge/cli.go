package apibridge

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/pkg/apiclient"
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
	Logger     *slog.Logger
}

// Run listens on cfg.Listen and forwards connections to cfg.SocketPath
// until ctx is done. Listening on the wildcard address needs no network
// yet: connections arrive once the node has configured its interface.
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
	fw := &Forwarder{Dial: UnixDialer(cfg.SocketPath), Logger: log}
	return fw.Serve(ctx, ln)
}

// NewCommand returns the api-bridge command line.
func NewCommand() *cobra.Command {
	var (
		cfg      = Config{Listen: DefaultListen, SocketPath: apiclient.DefaultSocketPath}
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "api-bridge",
		Short: "Forward TCP connections to the settings API's Unix socket (development nodes under QEMU)",
		Long: `api-bridge accepts TCP connections and forwards each one to the settings API's Unix
socket, so a host can reach a QEMU guest's API through user-mode networking's hostfwd.
There is no authentication: whoever reaches the port has the API, as root. It is for
development nodes booted by "gantry run", whose network is reachable only through QEMU
on the host's loopback. It leaves the network alone: the node configures its own.`,
		Example: `  # What the unit runs on a node booted by gantry run:
  api-bridge --listen :8081 --socket-path /run/api.sock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := cli.Logger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return cli.UsageError{Err: err}
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
	f.StringVar(&logLevel, "log-level", "info", "trace, debug, info, warn or error")
	return cmd
}

// Main runs the api-bridge command and returns the process exit code.
func Main(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewCommand(), args, os.Stderr)
}
