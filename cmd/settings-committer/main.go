// Command settings-committer commits the launch transaction between the
// boot steps; an empty transaction is success.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/apiclient"
	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/storewolf"
)

func main() {
	var socketPath, tx string
	cmd := &cobra.Command{
		Use:   "settings-committer",
		Short: "Commit the launch transaction (nothing pending is success)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keys, committed, err := apiclient.New(socketPath).CommitTx(cmd.Context(), tx)
			if err != nil {
				return err
			}
			if committed {
				fmt.Fprintf(cmd.ErrOrStderr(), "committed %d settings from %s\n", len(keys), tx)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&socketPath, "socket-path", apiclient.DefaultSocketPath, "the API's Unix socket")
	cmd.Flags().StringVar(&tx, "transaction", storewolf.LaunchTx, "transaction to commit")
	os.Exit(cli.Execute(context.Background(), cmd, os.Args[1:], os.Stderr))
}
