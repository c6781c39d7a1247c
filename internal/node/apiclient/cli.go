package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	api "github.com/gantry-os/gantry/pkg/apiclient"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
)

// IO is where the command line reads and writes.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
}

type rawFlags struct {
	uri, method, data string
}

func (f *rawFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.uri, "uri", "u", "", "URI to request, with its query string, e.g. /settings?keys=settings.motd")
	fl.StringVarP(&f.method, "method", "m", "GET", "HTTP method")
	fl.StringVarP(&f.method, "request", "X", "GET", "HTTP method (alias of --method)")
	fl.MarkHidden("request")
	fl.StringVarP(&f.data, "data", "d", "", "request body")
}

// NewCommand returns the apiclient command line.
func NewCommand(stdio IO) *cobra.Command {
	var socketPath string
	var verbose bool
	var logLevel string
	var remote remoteFlags
	var c *api.Client
	client := func() *api.Client {
		if c == nil {
			c = api.New(socketPath)
		}
		return c
	}

	var root rawFlags
	cmd := &cobra.Command{
		Use:   "apiclient [-u URI [-m METHOD] [-d DATA]] | apiclient COMMAND",
		Short: "Talk to Gantry's settings API",
		Long: "apiclient talks to Gantry's settings API over its Unix socket.\n" +
			"With -u and no command it sends one raw request (like `apiclient raw`).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if root.uri == "" {
				return cli.UsageError{Err: fmt.Errorf("give -u URI for a raw request, or a command")}
			}
			return runRaw(cmd.Context(), client(), root, verbose, stdio)
		},
	}
	cmd.SetIn(stdio.In)
	cmd.SetOut(stdio.Out)
	pf := cmd.PersistentFlags()
	pf.StringVarP(&socketPath, "socket-path", "s", api.DefaultSocketPath, "the API's Unix socket")
	pf.BoolVarP(&verbose, "verbose", "v", false, "print the response status and more detail to stderr")
	pf.StringVar(&logLevel, "log-level", "info", "trace, debug, info, warn or error (accepted for compatibility)")
	remote.register(pf)
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error {
		var err error
		c, err = remote.client()
		return err
	}
	root.register(cmd)

	var raw rawFlags
	rawCmd := &cobra.Command{
		Use:   "raw -u URI [-m METHOD] [-d DATA]",
		Short: "Send one request and print the response body",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if raw.uri == "" {
				return cli.UsageError{Err: fmt.Errorf("raw needs -u URI")}
			}
			return runRaw(cmd.Context(), client(), raw, verbose, stdio)
		},
	}
	raw.register(rawCmd)

	getCmd := &cobra.Command{
		Use:   "get [PREFIX... | /URI]",
		Short: "Print settings and OS information as JSON",
		Long: "get prints the settings under each PREFIX (e.g. settings.motd or settings.kernel), merged, or the\n" +
			"response of GET /URI. With no argument it prints os and settings.",
		RunE: func(cmd *cobra.Command, args []string) error {
			var doc any
			uris := 0
			for _, a := range args {
				if strings.HasPrefix(a, "/") {
					uris++
				}
			}
			switch {
			case uris > 0 && (uris != 1 || len(args) != 1):
				return cli.UsageError{Err: fmt.Errorf("give either prefixes or a single /URI, not both")}
			case uris == 1:
				body, err := client().Raw(cmd.Context(), http.MethodGet, args[0], nil)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(body, &doc); err != nil {
					return fmt.Errorf("response is not JSON: %w", err)
				}
			default:
				m, err := client().Get(cmd.Context(), args)
				if err != nil {
					return err
				}
				doc = m
			}
			return printJSON(stdio.Out, doc)
		},
	}

	var setJSON string
	var dryRun bool
	setCmd := &cobra.Command{
		Use:   "set KEY=VALUE... | set --json JSON",
		Short: "Change settings, commit and apply them",
		Long: "set changes settings in a new transaction, then commits and applies it.\n" +
			"Keys may leave out \"settings.\"; quote key segments that contain dots:\n" +
			"  apiclient set motd=hello 'kernel.sysctl.\"vm.max_map_count\"=262144'\n" +
			"The settings model decides each value's type, so numeric-looking strings stay strings.",
		RunE: func(cmd *cobra.Command, args []string) error {
			var keys []string
			var err error
			switch {
			case setJSON != "" && len(args) > 0:
				return cli.UsageError{Err: fmt.Errorf("give KEY=VALUE pairs or --json, not both")}
			case dryRun && (setJSON != "" || len(args) > 0):
				route, body := "/settings/keypair", []byte(nil)
				if setJSON != "" {
					route = "/settings"
					if body, err = api.UnwrapSettings([]byte(setJSON), "the --json value"); err != nil {
						return err
					}
				} else {
					body, _ = json.Marshal(map[string][]string{"request_payload": args})
				}
				plan, err := client().DryRun(cmd.Context(), route, [][]byte{body})
				if err != nil {
					return err
				}
				api.WritePlan(stdio.Out, plan)
				return nil
			case setJSON != "":
				keys, err = client().SetJSON(cmd.Context(), []byte(setJSON))
			case len(args) > 0:
				keys, err = client().SetKeypairs(cmd.Context(), args)
			default:
				return cli.UsageError{Err: fmt.Errorf("nothing to set: give KEY=VALUE pairs or --json")}
			}
			if err != nil {
				return err
			}
			if verbose {
				fmt.Fprintf(stdio.Err, "committed %s\n", strings.Join(keys, ", "))
			}
			return nil
		},
	}
	setCmd.Flags().StringVarP(&setJSON, "json", "j", "", "settings as a JSON object")
	setCmd.Flags().BoolVar(&dryRun, "dry-run", false, "show the diff of every file the change would render, and the restarts, without changing anything")

	var applyDryRun bool
	applyCmd := &cobra.Command{
		Use:   "apply [URI...]",
		Short: "Apply settings documents (TOML or JSON) from files, URLs or standard input",
		Long: "apply reads each document (file://, a path, http:// or https://, or - for standard input; none\n" +
			"means standard input), takes its top-level settings table, and sends them all in one\n" +
			"transaction, later documents winning, then commits and applies it.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"-"}
			}
			hc := &http.Client{Timeout: 60 * time.Second}
			var docs []api.Document
			for _, a := range args {
				d, err := api.Fetch(cmd.Context(), a, stdio.In, hc)
				if err != nil {
					return err
				}
				docs = append(docs, d)
			}
			if applyDryRun {
				bodies, err := api.DocumentBodies(docs)
				if err != nil {
					return err
				}
				plan, err := client().DryRun(cmd.Context(), "/settings", bodies)
				if err != nil {
					return err
				}
				api.WritePlan(stdio.Out, plan)
				return nil
			}
			keys, err := client().Apply(cmd.Context(), docs)
			if err != nil {
				return err
			}
			if verbose {
				fmt.Fprintf(stdio.Err, "committed %s\n", strings.Join(keys, ", "))
			}
			return nil
		},
	}

	applyCmd.Flags().BoolVar(&applyDryRun, "dry-run", false, "show the diff of every file the documents would render, and the restarts, without changing anything")
	cmd.AddCommand(rawCmd, getCmd, setCmd, applyCmd, updateCommand(client, stdio), rebootCommand(client), execCommand(client, stdio))
	return cmd
}

func runRaw(ctx context.Context, c *api.Client, f rawFlags, verbose bool, stdio IO) error {
	var body []byte
	if f.data != "" {
		body = []byte(f.data)
	}
	code, out, err := c.Do(ctx, f.method, f.uri, body)
	if err != nil {
		return err
	}
	if verbose {
		fmt.Fprintf(stdio.Err, "%d %s\n", code, http.StatusText(code))
	}
	if code < 200 || code > 299 {
		return &api.StatusError{Code: code, Method: strings.ToUpper(f.method), URI: f.uri, Body: string(out)}
	}
	if len(bytes.TrimSpace(out)) > 0 {
		stdio.Out.Write(out)
		if !bytes.HasSuffix(out, []byte("\n")) {
			fmt.Fprintln(stdio.Out)
		}
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// Main runs the apiclient command line and returns the exit code.
func Main(ctx context.Context, args []string, stdio IO) int {
	return cli.Execute(ctx, NewCommand(stdio), args, stdio.Err)
}

// StdIO is the process's standard streams.
func StdIO() IO { return IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr} }

func printRaw(w io.Writer, body []byte) error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("response is not JSON: %w", err)
	}
	return printJSON(w, v)
}

func updateCommand(client func() *api.Client, stdio IO) *cobra.Command {
	cmd := &cobra.Command{Use: "update", Short: "Check for, apply or cancel an OS update"}
	check := &cobra.Command{
		Use: "check", Short: "Refresh the list of updates and print the update status", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			body, _, err := client().UpdateAction(c.Context(), "refresh-updates", "refresh")
			if err != nil {
				return err
			}
			return printRaw(stdio.Out, body)
		},
	}
	var doCheck, reboot bool
	apply := &cobra.Command{
		Use: "apply [--check] [--reboot]", Short: "Write the chosen update to the inactive partitions and make it boot next", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl := client()
			if doCheck {
				_, st, err := cl.UpdateAction(c.Context(), "refresh-updates", "refresh")
				if err != nil {
					return err
				}
				switch st.UpdateState {
				case "Idle":
					fmt.Fprintln(stdio.Err, "No updates available.")
					return nil
				case "Ready":
					fmt.Fprintln(stdio.Err, "An update is already applied; reboot to use it.")
					return nil
				}
			}
			if _, _, err := cl.UpdateAction(c.Context(), "prepare-update", "prepare"); err != nil {
				return err
			}
			body, _, err := cl.UpdateAction(c.Context(), "activate-update", "activate")
			if err != nil {
				return err
			}
			if reboot {
				_, err := cl.Raw(c.Context(), http.MethodPost, "/actions/reboot", nil)
				return err
			}
			return printRaw(stdio.Out, body)
		},
	}
	apply.Flags().BoolVarP(&doCheck, "check", "c", false, "refresh first, and stop when there is nothing to apply")
	apply.Flags().BoolVarP(&reboot, "reboot", "r", false, "reboot into the update once it is applied")
	cancel := &cobra.Command{
		Use: "cancel", Short: "Undo an applied (activated) update before rebooting", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			body, _, err := client().UpdateAction(c.Context(), "deactivate-update", "deactivate")
			if err != nil {
				return err
			}
			return printRaw(stdio.Out, body)
		},
	}
	cmd.AddCommand(check, apply, cancel)
	return cmd
}

func rebootCommand(client func() *api.Client) *cobra.Command {
	return &cobra.Command{
		Use: "reboot", Short: "Reboot the node", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, err := client().Raw(c.Context(), http.MethodPost, "/actions/reboot", nil)
			return err
		},
	}
}
