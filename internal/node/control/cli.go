// Package control is the command line of gantry-control, the control
// container's program (package internal/containers/control).
package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/internal/containers/control"
	"github.com/gantry-os/gantry/pkg/apiclient"
)

// NewCommand returns the gantry-control command line.
func NewCommand() *cobra.Command {
	userData, socket, logLevel := "/.bottlerocket/host-containers/current/user-data", apiclient.DefaultSocketPath, "info"
	cmd := &cobra.Command{
		Use:   "gantry-control",
		Short: "Serve the node's API over mutual TLS (the control container)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := cli.Logger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return cli.UsageError{Err: err}
			}
			b, err := os.ReadFile(userData)
			if errors.Is(err, os.ErrNotExist) {
				// Like Bottlerocket's containers without user data: nothing to
				// do, and no restart loop either.
				log.Warn("no user data: the API is not served; set settings.host-containers.control.user-data", "path", userData)
				<-cmd.Context().Done()
				return nil
			}
			if err != nil {
				return err
			}
			cfg, err := control.ParseConfig(b)
			if err != nil {
				return err
			}
			return control.Serve(cmd.Context(), cfg, socket, log, func(a net.Addr) {
				fmt.Fprintf(cmd.OutOrStdout(), "gantry-control: serving the API over mutual TLS on %s\n", a)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&userData, "user-data", userData, "the container's user data (JSON)")
	f.StringVar(&socket, "socket-path", socket, "the settings API's socket")
	f.StringVar(&logLevel, "log-level", logLevel, "trace, debug, info, warn or error")
	return cmd
}

// Main runs gantry-control; SIGTERM stops it.
func Main(ctx context.Context, args []string) int {
	ctx, cancel := cli.SignalContext(ctx)
	defer cancel()
	return cli.Execute(ctx, NewCommand(), args, os.Stderr)
}
