// Package disks is the command line of gantry-disks, the disks bootstrap
// container's program (package internal/containers/disks).
package disks

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/internal/containers/disks"
)

// userDataPaths are where the container's user data is, as a bootstrap
// container and as a host container.
var userDataPaths = []string{
	"/.bottlerocket/bootstrap-containers/current/user-data",
	"/.bottlerocket/host-containers/current/user-data",
}

// NewCommand returns gantry-disks's command line.
func NewCommand() *cobra.Command {
	userData := ""
	check := false
	cmd := &cobra.Command{
		Use:   "gantry-disks",
		Short: "Format and mount the node's ephemeral disks under /local/mnt from the user data",
		Long: `gantry-disks prepares the disks its user data (JSON) lists: a blank disk is formatted
(ext4 or xfs), a disk that already holds that filesystem is kept as it is, and each is
mounted on /local/mnt/<mount>, the host's /mnt/<mount>. A disk holding anything else is
refused unless its entry says "wipe"; a disk in use is refused always. Run it as a
bootstrap container (see docs/host-containers.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, b, err := readUserData(userData)
			if err != nil {
				return err
			}
			c, err := disks.ParseConfig(b)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if check {
				fmt.Fprintf(cmd.OutOrStdout(), "gantry-disks: %s: %d disks, valid\n", path, len(c.Disks))
				return nil
			}
			_, err = disks.HostSystem(cmd.OutOrStdout()).Prepare(cmd.Context(), c)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&userData, "user-data", "", "the user data (default: the bootstrap or host container's)")
	f.BoolVar(&check, "check", false, "only check the user data")
	return cmd
}

func readUserData(path string) (string, []byte, error) {
	paths := userDataPaths
	if path != "" {
		paths = []string{path}
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil {
			return p, b, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return p, nil, fmt.Errorf("user data: %w", err)
		}
	}
	return "", nil, fmt.Errorf("no user data at %s: set settings.bootstrap-containers.<name>.user-data "+
		"to the disks to prepare (docs/host-containers.md)", paths[0])
}

// Main runs gantry-disks.
func Main(ctx context.Context, args []string) int {
	ctx, cancel := cli.SignalContext(ctx)
	defer cancel()
	return cli.Execute(ctx, NewCommand(), args, os.Stderr)
}
