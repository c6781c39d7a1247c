// Package hostcontainers is the host-containers command line on package
// internal/containers/hostcontainers: the host-containers service's
// restart command, run by settings-applier with CHANGED_SETTINGS.
package hostcontainers

import (
	"context"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/internal/containers/hostcontainers"
	"github.com/gantry-os/gantry/internal/containers/hostctr"
	"github.com/gantry-os/gantry/pkg/apiclient"
)

// NewCommand returns the host-containers command line; getenv reads
// CHANGED_SETTINGS.
func NewCommand(getenv func(string) string) *cobra.Command {
	socket := apiclient.DefaultSocketPath
	var boot bool
	cmd := &cobra.Command{
		Use:   "host-containers",
		Short: "Start, stop or restart the host containers whose settings changed (CHANGED_SETTINGS; all when unset)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			all, err := hostcontainers.Read(cmd.Context(), socket)
			if err != nil {
				return err
			}
			changed := strings.Fields(getenv("CHANGED_SETTINGS"))
			return hostcontainers.Apply(cmd.Context(), all, hostcontainers.Options{
				Paths: hostctr.DefaultPaths(), Systemd: hostcontainers.DBus{},
				Changed: changed, Boot: boot || len(changed) == 0,
			})
		},
	}
	cmd.Flags().StringVar(&socket, "socket-path", socket, "the settings API's socket")
	cmd.Flags().BoolVar(&boot, "no-wait", false, "queue the starts without waiting for them (the default when CHANGED_SETTINGS is unset, as at boot)")
	return cmd
}

// Main runs host-containers with args.
func Main(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewCommand(os.Getenv), args, os.Stderr)
}
