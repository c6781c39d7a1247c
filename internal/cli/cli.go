// Package cli holds what Gantry's daemons share on the command line: logger
// set-up from --log-level and a context cancelled by SIGINT or SIGTERM.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Logger returns a text logger to w at the named level.
func Logger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	switch level {
	case "trace", "debug":
		l = slog.LevelDebug
	case "", "info":
		l = slog.LevelInfo
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		return nil, fmt.Errorf("invalid --log-level %q (want trace, debug, info, warn or error)", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// SignalContext is cancelled on SIGINT or SIGTERM.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// UsageError is a command-line mistake; it exits 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }

func (e UsageError) Unwrap() error { return e.Err }

// ExitError is a command's own exit code (apiclient exec passes on the
// remote command's): Execute returns it without printing anything.
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit code %d", e.Code) }

// Execute runs cmd with args and returns the exit code: 0 on success, 2 on
// a usage error (printed with the usage), 1 on any other error.
func Execute(ctx context.Context, cmd *cobra.Command, args []string, stderr io.Writer) int {
	cmd.SetArgs(args)
	cmd.SetErr(stderr)
	cmd.SilenceErrors = true
	cmd.SilenceUsage = true
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return UsageError{err} })
	wrapArgs(cmd)
	c, err := cmd.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ee ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var ue UsageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "required flag") {
		fmt.Fprintf(stderr, "%s: %v\n\n%s", cmd.Name(), err, c.UsageString())
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", cmd.Name(), err)
	return 1
}

// wrapArgs marks argument-count errors of every command as usage errors.
func wrapArgs(cmd *cobra.Command) {
	if orig := cmd.Args; orig != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := orig(c, args); err != nil {
				return UsageError{err}
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		wrapArgs(sub)
	}
}
