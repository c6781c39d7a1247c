// Package bootstrap is the command line of the two boot-time runners on
// package internal/containers/bootstrap: bootstrap-commands (before
// preconfigured.target) and bootstrap-containers (before
// configured.target).
package bootstrap

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/containerd/containerd/v2/client"
	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/internal/containers/bootstrap"
	"github.com/gantry-os/gantry/internal/containers/hostcontainers"
	"github.com/gantry-os/gantry/internal/containers/hostctr"
	"github.com/gantry-os/gantry/pkg/apiclient"
)

// StatusDir holds the groups' reports, which the API serves.
const StatusDir = "/run/gantry"

// runnerFunc makes the runner of a group's entries.
type runnerFunc func(cmd *cobra.Command, entries map[string]bootstrap.Entry) (bootstrap.Runner, func(), error)

func newCommand(g bootstrap.Group, short string, socket *string, runner runnerFunc) *cobra.Command {
	cmd := &cobra.Command{
		Use:   string(g),
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			entries, err := bootstrap.Read(ctx, *socket, g)
			if err != nil {
				return err
			}
			run, done, err := runner(cmd, entries)
			if err != nil {
				return err
			}
			defer done()
			api := apiclient.New(*socket)
			_, err = bootstrap.Run(ctx, entries, bootstrap.Options{
				Group: g, Run: run, Console: cmd.OutOrStdout(), StatusPath: bootstrap.StatusPath(StatusDir, g),
				SetMode: func(ctx context.Context, name, mode string) error {
					_, err := api.SetKeypairs(ctx, []string{fmt.Sprintf("%s.%s.mode=%s", g, name, mode)})
					return err
				},
			})
			return err
		},
	}
	cmd.Flags().StringVar(socket, "socket-path", *socket, "the settings API's socket")
	return cmd
}

// NewCommandsCommand is bootstrap-commands: each entry's apiclient
// commands, in order; the first failure fails the entry.
func NewCommandsCommand() *cobra.Command {
	socket, apiclientPath := apiclient.DefaultSocketPath, "/usr/bin/apiclient"
	cmd := newCommand(bootstrap.Commands, "Run settings.bootstrap-commands (apiclient invocations) in name order", &socket,
		func(cmd *cobra.Command, _ map[string]bootstrap.Entry) (bootstrap.Runner, func(), error) {
			return func(ctx context.Context, name string, e bootstrap.Entry) error {
				for i, args := range e.Commands {
					if err := bootstrap.CheckCommand(args); err != nil {
						return err
					}
					c := exec.CommandContext(ctx, apiclientPath, append([]string{"--socket-path", socket}, args[1:]...)...)
					c.Stdout, c.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
					if err := c.Run(); err != nil {
						return fmt.Errorf("command %d %q: %w", i+1, args, err)
					}
				}
				return nil
			}, func() {}, nil
		})
	cmd.Flags().StringVar(&apiclientPath, "apiclient", apiclientPath, "the apiclient program")
	return cmd
}

// NewContainersCommand is bootstrap-containers: each enabled container run
// to completion on host-containerd, which it starts only when one is.
func NewContainersCommand() *cobra.Command {
	socket, ctrSocket, registryConfig, logLevel := apiclient.DefaultSocketPath, hostctr.DefaultSocket, "/etc/host-containers/host-ctr.toml", "info"
	cmd := newCommand(bootstrap.Containers, "Run settings.bootstrap-containers to completion in name order", &socket,
		func(cmd *cobra.Command, entries map[string]bootstrap.Entry) (bootstrap.Runner, func(), error) {
			enabled := false
			for _, e := range entries {
				enabled = enabled || (e.Mode != "" && e.Mode != "off")
			}
			if !enabled {
				return func(context.Context, string, bootstrap.Entry) error { return nil }, func() {}, nil
			}
			log, err := cli.Logger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return nil, nil, cli.UsageError{Err: err}
			}
			if err := (hostcontainers.DBus{}).Start(cmd.Context(), "host-containerd.service", true); err != nil {
				return nil, nil, err
			}
			cfg, err := hostctr.LoadRegistryConfig(registryConfig)
			if err != nil {
				return nil, nil, err
			}
			c, err := client.New(ctrSocket, client.WithDefaultNamespace(hostctr.Namespace))
			if err != nil {
				return nil, nil, fmt.Errorf("connect to host-containerd: %w", err)
			}
			r := hostctr.Runner{Client: c, Paths: hostctr.DefaultPaths(), Log: log,
				Puller: hostctr.Puller{Client: c, Hosts: cfg.Hosts(nil), Retry: hostctr.DefaultRetry(), Log: log},
				Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(), Exists: hostctr.PathExists, Getenv: os.LookupEnv}
			return func(ctx context.Context, name string, e bootstrap.Entry) error {
				ctr := hostctr.Container{Name: name, Kind: hostctr.Bootstrap, Source: e.Source}
				if err := r.Paths.WriteUserData(ctr, e.UserData); err != nil {
					return err
				}
				return r.Run(ctx, ctr)
			}, func() { c.Close() }, nil
		})
	f := cmd.Flags()
	f.StringVar(&ctrSocket, "containerd-socket", ctrSocket, "host-containerd's socket")
	f.StringVar(&registryConfig, "registry-config", registryConfig, "registry mirrors and credentials (TOML)")
	f.StringVar(&logLevel, "log-level", logLevel, "trace, debug, info, warn or error")
	return cmd
}

// CommandsMain runs bootstrap-commands with args.
func CommandsMain(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewCommandsCommand(), args, os.Stderr)
}

// ContainersMain runs bootstrap-containers with args.
func ContainersMain(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewContainersCommand(), args, os.Stderr)
}
