package applier

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/pkg/apiclient"
)

// FromFlags builds the applier the daemons share from their command-line
// flags: --root, --templates-dir and --service-runner.
func FromFlags(root, templatesDir, runnerKind string) (*Applier, error) {
	execRunner := ExecRunner{Root: root}
	var runner Runner
	switch runnerKind {
	case "auto":
		runner = execRunner
		if SystemdAvailable() && (root == "" || root == "/") {
			runner = SystemdRunner{Fallback: execRunner}
		}
	case "systemd":
		runner = SystemdRunner{Fallback: execRunner}
	case "exec":
		runner = execRunner
	case "none":
	default:
		return nil, cli.UsageError{Err: fmt.Errorf("invalid --service-runner %q (want auto, systemd, exec or none)", runnerKind)}
	}
	return New(Options{Root: root, TemplatesDir: templatesDir, Runner: runner}), nil
}

// AddFlags registers --root, --templates-dir and --service-runner.
func AddFlags(cmd *cobra.Command, root, templatesDir, runnerKind *string) {
	f := cmd.Flags()
	f.StringVar(root, "root", "/", "prefix for every file the applier renders and every restart program it runs")
	f.StringVar(templatesDir, "templates-dir", "", "directory holding the templates by name (default: each file's template-path under --root)")
	f.StringVar(runnerKind, "service-runner", "auto", "how restart commands run: systemd (over D-Bus), exec, none, or auto (systemd when it is init)")
}

// NewCommand returns the settings-applier command line: it applies the
// changed keys given as a JSON array on standard input, or everything with
// --all (at boot), reading settings through the API.
func NewCommand(stdin io.Reader) *cobra.Command {
	var socketPath, root, templatesDir, runnerKind, logLevel string
	var all bool
	cmd := &cobra.Command{
		Use:   "settings-applier [--all]",
		Short: "Render configuration files and restart services for committed settings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := cli.Logger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			app, err := FromFlags(root, templatesDir, runnerKind)
			if err != nil {
				return err
			}
			var keys []string
			if !all {
				if err := json.NewDecoder(stdin).Decode(&keys); err != nil {
					return cli.UsageError{Err: fmt.Errorf("read changed keys (a JSON array) from standard input, or give --all: %w", err)}
				}
				if keys == nil {
					keys = []string{}
				}
			}
			src := APISource{Client: apiclient.New(socketPath)}
			plan, err := app.Plan(cmd.Context(), src, keys)
			if err != nil {
				return err
			}
			rep, err := app.Apply(cmd.Context(), plan)
			if err != nil {
				return err
			}
			log.Info("applied settings", "all", all, "keys", len(keys), "files", len(rep.Written), "restarts", len(rep.Restarts))
			return nil
		},
	}
	cmd.Flags().StringVar(&socketPath, "socket-path", apiclient.DefaultSocketPath, "the API's Unix socket")
	cmd.Flags().BoolVar(&all, "all", false, "render every configuration file and restart every service (boot)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "trace, debug, info, warn or error")
	AddFlags(cmd, &root, &templatesDir, &runnerKind)
	return cmd
}

// Main runs settings-applier and returns the exit code.
func Main(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewCommand(os.Stdin), args, os.Stderr)
}
