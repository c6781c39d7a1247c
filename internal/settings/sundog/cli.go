package sundog

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/pkg/apiclient"
)

// NewCommand returns the sundog command line.
func NewCommand() *cobra.Command {
	var socketPath, tx, logLevel string
	var o Options
	cmd := &cobra.Command{
		Use:   "sundog",
		Short: "Generate the settings that have a generator and no value yet",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := cli.Logger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			o.Client, o.Tx, o.Logger = apiclient.New(socketPath), tx, log
			res, err := Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			log.Info("generated settings", "generated", len(res.Generated), "skipped", len(res.Skipped))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&socketPath, "socket-path", apiclient.DefaultSocketPath, "the API's Unix socket")
	f.StringVar(&tx, "transaction", apiclient.LaunchTx, "transaction the generated settings go to")
	f.DurationVar(&o.Timeout, "timeout", DefaultTimeout, "time limit of each generator")
	f.StringVar(&logLevel, "log-level", "info", "trace, debug, info, warn or error")
	return cmd
}

// Main runs sundog and returns the exit code.
func Main(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewCommand(), args, os.Stderr)
}
