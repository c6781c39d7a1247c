package generator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gantry-os/gantry/internal/network/netdog"
	"github.com/spf13/cobra"
)

// nothing turns "no network yet" into ErrNothing: sundog then leaves the
// setting unset, and a later boot generates it.
func nothing(err error) error {
	if errors.Is(err, netdog.ErrNoPrimary) || errors.Is(err, netdog.ErrNoAddress) {
		return fmt.Errorf("%w: %v", ErrNothing, err)
	}
	return err
}

// NewCommand returns the settings-generator command line.
func NewCommand(out io.Writer, n netdog.Host) *cobra.Command {
	emit := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	cmd := &cobra.Command{Use: "settings-generator", Short: "Generate setting values for sundog (JSON on stdout; exit 2: nothing to offer)"}
	cmd.AddCommand(
		&cobra.Command{Use: "seed", Short: "A random update wave seed, 0-2047", Args: cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				s, err := Seed()
				if err != nil {
					return err
				}
				return emit(s)
			}},
		&cobra.Command{Use: "hostname", Short: "The host name: from DHCP, else reverse DNS of the node's address, else ip-a-b-c-d", Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				h, err := n.Hostname(c.Context())
				if err != nil {
					return nothing(err)
				}
				return emit(h)
			}},
		&cobra.Command{Use: "node-ip", Short: "The primary interface's address (IPv4 first)", Args: cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				ip, err := n.NodeIP()
				if err != nil {
					return nothing(err)
				}
				return emit(ip.String())
			}},
	)
	return cmd
}

// Main runs settings-generator. Exit 2 means "nothing to offer" (sundog
// skips the setting), so every other failure, usage errors included, exits 1.
func Main(ctx context.Context, args []string) int {
	cmd := NewCommand(os.Stdout, netdog.SystemHost())
	cmd.SetArgs(args)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.ExecuteContext(ctx)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNothing):
		fmt.Fprintln(os.Stderr, "settings-generator:", err)
		return 2
	default:
		fmt.Fprintln(os.Stderr, "settings-generator:", err)
		return 1
	}
}
