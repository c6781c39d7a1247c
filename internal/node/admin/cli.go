// Package admin is the command line of the admin container's programs on
// package internal/containers/admin: gantry-admin (its entry point: set up
// from the user data, then sshd) and sheltie (a root shell on the host).
package admin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/internal/containers/admin"
)

// NewAdminCommand returns gantry-admin's command line.
func NewAdminCommand() *cobra.Command {
	p := admin.DefaultPaths()
	userData := p.Persistent + "/user-data"
	cmd := &cobra.Command{
		Use:   "gantry-admin",
		Short: "Set the admin container up from its user data and run sshd",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := os.ReadFile(userData)
			if errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(cmd.ErrOrStderr(), "gantry-admin: no user data at %s: sshd does not start; "+
					"set settings.host-containers.admin.user-data (docs/host-containers.md)\n", userData)
				<-cmd.Context().Done()
				return nil
			}
			if err != nil {
				return err
			}
			c, err := admin.ParseConfig(b)
			if err != nil {
				return err
			}
			if err := admin.Setup(p, c); err != nil {
				return fmt.Errorf("set up: %w", err)
			}
			// Host keys: made once, kept in the persistent directory.
			if out, err := exec.CommandContext(cmd.Context(), "ssh-keygen", "-A", "-f", p.Persistent).CombinedOutput(); err != nil {
				return fmt.Errorf("ssh-keygen -A: %w: %s", err, out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "gantry-admin: sshd for %s (%d authorized keys, %d trusted CA keys)\n",
				c.User, len(c.SSH.AuthorizedKeys), len(c.SSH.TrustedUserCAKeys))
			sshd, err := exec.LookPath("sshd")
			if err != nil {
				return err
			}
			return syscall.Exec(sshd, []string{sshd, "-D", "-e", "-f", "/etc/ssh/sshd_config"}, os.Environ())
		},
	}
	cmd.Flags().StringVar(&userData, "user-data", userData, "the container's user data (JSON)")
	return cmd
}

// NewSheltieCommand returns sheltie's command line.
func NewSheltieCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sheltie [COMMAND [ARG...]]",
		Short: "A root shell (or COMMAND) in the host's namespaces; run it as root: sudo sheltie",
		RunE: func(cmd *cobra.Command, args []string) error {
			if os.Geteuid() != 0 {
				return errors.New("sheltie must run as root: sudo sheltie")
			}
			// The parent (sudo, or the user's shell) is still in the
			// container: its root holds the shell once nsenter is in the
			// host's mount namespace.
			argv := admin.SheltieArgs(os.Getppid(), args)
			nsenter, err := exec.LookPath(argv[0])
			if err != nil {
				return err
			}
			return syscall.Exec(nsenter, argv, os.Environ())
		},
	}
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// AdminMain runs gantry-admin.
func AdminMain(ctx context.Context, args []string) int {
	ctx, cancel := cli.SignalContext(ctx)
	defer cancel()
	return cli.Execute(ctx, NewAdminCommand(), args, os.Stderr)
}

// SheltieMain runs sheltie.
func SheltieMain(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewSheltieCommand(), args, os.Stderr)
}
