package apiclient

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gantry-os/gantry/internal/cli"
	api "github.com/gantry-os/gantry/pkg/apiclient"
)

// execCommand is `apiclient exec [-t|-T] TARGET COMMAND [ARG...]`:
// Bottlerocket's, with the command's exit code as apiclient's.
func execCommand(client func() *api.Client, stdio IO) *cobra.Command {
	var tty, noTTY bool
	cmd := &cobra.Command{
		Use:   "exec [-t|--tty | -T|--no-tty] TARGET COMMAND [ARG...]",
		Short: "Run a command in a host container (admin, control, ...), with a terminal when stdin and stdout are one",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tty && noTTY {
				return cli.UsageError{Err: errors.New("--tty and --no-tty exclude each other")}
			}
			in, inIsFile := stdio.In.(*os.File)
			out, outIsFile := stdio.Out.(*os.File)
			terminal := inIsFile && outIsFile && term.IsTerminal(int(in.Fd())) && term.IsTerminal(int(out.Fd()))
			useTTY := tty || (terminal && !noTTY)
			o := api.ExecOptions{Target: args[0], Command: args[1:], Stdin: stdio.In, Stdout: stdio.Out}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
			defer stop()
			if useTTY {
				size := api.Size{Rows: 24, Cols: 80}
				if outIsFile {
					if w, h, err := term.GetSize(int(out.Fd())); err == nil {
						size = api.Size{Rows: uint16(h), Cols: uint16(w)}
					}
				}
				o.TTY = &size
				if terminal {
					old, err := term.MakeRaw(int(in.Fd()))
					if err != nil {
						return err
					}
					defer term.Restore(int(in.Fd()), old)
					o.Resize = watchSize(ctx, int(out.Fd()))
				}
			}
			code, err := client().Exec(ctx, o)
			if ctx.Err() != nil && cmd.Context().Err() == nil {
				return cli.ExitError{Code: 130}
			}
			if err != nil {
				return err
			}
			if code != 0 {
				return cli.ExitError{Code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&tty, "tty", "t", false, "use a terminal")
	f.BoolVarP(&noTTY, "no-tty", "T", false, "use no terminal")
	return cmd
}

// watchSize sends the terminal's size at each SIGWINCH.
func watchSize(ctx context.Context, fd int) <-chan api.Size {
	ch := make(chan api.Size, 1)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGWINCH)
	go func() {
		defer signal.Stop(sig)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				if w, h, err := term.GetSize(fd); err == nil {
					select {
					case ch <- api.Size{Rows: uint16(h), Cols: uint16(w)}:
					default:
					}
				}
			}
		}
	}()
	return ch
}
