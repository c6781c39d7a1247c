// Package committer is settings-committer: it commits the launch
// transaction through the settings API between the boot steps (after
// early-boot-config and after sundog). A transaction with nothing pending
// is success, so the step can run at every boot.
package committer

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/pkg/apiclient"
)

// NewCommand returns the settings-committer command.
func NewCommand() *cobra.Command {
	var socketPath, tx string
	cmd := &cobra.Command{
		Use:   "settings-committer",
		Short: "Commit the launch transaction (nothing pending is success)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tx == "" {
				return cli.UsageError{Err: fmt.Errorf("--transaction: name the transaction to commit")}
			}
			keys, committed, err := apiclient.New(socketPath).CommitTx(cmd.Context(), tx)
			if err != nil {
				return fmt.Errorf("commit transaction %s: %w", tx, err)
			}
			if committed {
				fmt.Fprintf(cmd.ErrOrStderr(), "committed %d settings from %s\n", len(keys), tx)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&socketPath, "socket-path", apiclient.DefaultSocketPath, "the API's Unix socket")
	cmd.Flags().StringVar(&tx, "transaction", apiclient.LaunchTx, "transaction to commit")
	return cmd
}

// Main runs settings-committer and returns the process exit code: 0 when
// the transaction is committed or has nothing pending, 1 when the commit
// fails, 2 on a usage error.
func Main(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewCommand(), args, os.Stderr)
}
