// Package hostctr is the host-ctr command line (Bottlerocket's name) on
// package internal/containers/hostctr: run (one container, for its
// host-containers@ or bootstrap-containers@ unit), pull-image and clean-up.
package hostctr

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/client"
	clog "github.com/containerd/log"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/internal/containers/hostctr"
)

type globals struct {
	socket, namespace, logLevel, registryConfig string
}

func (g *globals) connect() (*client.Client, error) {
	c, err := client.New(g.socket, client.WithDefaultNamespace(g.namespace))
	if err != nil {
		return nil, fmt.Errorf("connect to host-containerd at %s: %w", g.socket, err)
	}
	return c, nil
}

// withPuller connects to host-containerd and calls f with a puller that
// has the registry configuration.
func (g *globals) withPuller(cmd *cobra.Command, f func(*client.Client, hostctr.Puller) error) error {
	log, err := cli.Logger(cmd.ErrOrStderr(), g.logLevel)
	if err != nil {
		return cli.UsageError{Err: err}
	}
	// The containerd client logs each registry request at info: only its
	// warnings reach the journal, unless host-ctr is asked to debug.
	clientLevel := "warn"
	if g.logLevel == "debug" || g.logLevel == "trace" {
		clientLevel = g.logLevel
	}
	if err := clog.SetLevel(clientLevel); err != nil {
		return err
	}
	cfg := hostctr.RegistryConfig{}
	if g.registryConfig != "" {
		if cfg, err = hostctr.LoadRegistryConfig(g.registryConfig); err != nil {
			return err
		}
	}
	c, err := g.connect()
	if err != nil {
		return err
	}
	defer c.Close()
	return f(c, hostctr.Puller{Client: c, Hosts: cfg.Hosts(nil), Retry: hostctr.DefaultRetry(), Log: log})
}

// NewCommand returns the host-ctr command line.
func NewCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "host-ctr",
		Short: "Run host and bootstrap containers on host-containerd",
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.socket, "containerd-socket", "s", hostctr.DefaultSocket, "host-containerd's socket")
	pf.StringVarP(&g.namespace, "namespace", "n", hostctr.Namespace, "containerd namespace")
	pf.StringVar(&g.logLevel, "log-level", "info", "trace, debug, info, warn or error")
	root.AddCommand(runCommand(g), pullCommand(g), cleanUpCommand(g))
	return root
}

func runCommand(g *globals) *cobra.Command {
	var c hostctr.Container
	var kind, commandJSON string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Pull a container's image and run it until it exits or host-ctr is stopped",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c.Kind = hostctr.Kind(kind)
			if commandJSON != "" {
				if err := json.Unmarshal([]byte(commandJSON), &c.Command); err != nil {
					return cli.UsageError{Err: fmt.Errorf("--command-json must be a JSON list of strings: %w", err)}
				}
			}
			if err := c.Validate(); err != nil {
				return cli.UsageError{Err: err}
			}
			return g.withPuller(cmd, func(ctr *client.Client, p hostctr.Puller) error {
				r := hostctr.Runner{
					Client: ctr, Puller: p, Paths: hostctr.DefaultPaths(), Log: p.Log,
					Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(),
					Exists: hostctr.PathExists, Getenv: os.LookupEnv,
					Ready: func(status string) {
						_, _ = daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS="+status)
					},
				}
				return r.Run(cmd.Context(), c)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Name, "container-id", "", "the container's name (host-containers.<name>)")
	f.StringVar(&c.Source, "source", "", "image reference")
	f.BoolVar(&c.Superpowered, "superpowered", false, "give the container the host's root, PID namespace and every capability")
	f.StringVar(&kind, "container-type", string(hostctr.Host), "host or bootstrap")
	f.StringVar(&commandJSON, "command-json", "", "command replacing the image's, as a JSON list")
	f.StringVar(&g.registryConfig, "registry-config", "", "registry mirrors and credentials (TOML)")
	_ = cmd.MarkFlagRequired("container-id")
	_ = cmd.MarkFlagRequired("source")
	return cmd
}

func pullCommand(g *globals) *cobra.Command {
	var source string
	cmd := &cobra.Command{
		Use:   "pull-image",
		Short: "Pull and unpack an image without running it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ref, err := hostctr.NormalizeRef(source)
			if err != nil {
				return cli.UsageError{Err: err}
			}
			return g.withPuller(cmd, func(_ *client.Client, p hostctr.Puller) error {
				img, err := p.Pull(cmd.Context(), ref)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", img.Name(), img.Target().Digest)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "image reference")
	cmd.Flags().StringVar(&g.registryConfig, "registry-config", "", "registry mirrors and credentials (TOML)")
	_ = cmd.MarkFlagRequired("source")
	return cmd
}

func cleanUpCommand(g *globals) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "clean-up",
		Short: "Kill a container's task and delete it with its snapshot (a missing one is not an error)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctr, err := g.connect()
			if err != nil {
				return err
			}
			defer ctr.Close()
			return hostctr.CleanUp(cmd.Context(), ctr, id)
		},
	}
	cmd.Flags().StringVar(&id, "container-id", "", "containerd container ID (boot.<name> for bootstrap containers)")
	_ = cmd.MarkFlagRequired("container-id")
	return cmd
}

// Main runs host-ctr with args; SIGTERM stops a running container.
func Main(ctx context.Context, args []string) int {
	ctx, cancel := cli.SignalContext(ctx)
	defer cancel()
	return cli.Execute(ctx, NewCommand(), args, os.Stderr)
}
