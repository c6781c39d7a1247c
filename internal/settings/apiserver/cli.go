package apiserver

import (
	"context"
	"fmt"
	"github.com/gantry-os/gantry/internal/containers/exec"
	"github.com/gantry-os/gantry/internal/containers/hostctr"
	"github.com/gantry-os/gantry/internal/containers/status"
	"github.com/gantry-os/gantry/pkg/apiclient"
	"os"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/internal/settings/applier"
	"github.com/gantry-os/gantry/internal/update/updog"
	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/model"
	"github.com/gantry-os/gantry/pkg/osrelease"
)

// NewCommand returns the apiserver command line.
func NewCommand() *cobra.Command {
	var (
		datastorePath, socketPath, variant, groupsFile, releasePath, root, templatesDir, runnerKind, logLevel string
		socketGID                                                                                             int
		upd                                                                                                   UpdateOptions
		rebootCommand, readyConsole, execSocket                                                               string
	)
	cmd := &cobra.Command{
		Use:   "apiserver",
		Short: "Serve Gantry's settings API on a Unix socket",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := cli.Logger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			ctx, stop := cli.SignalContext(cmd.Context())
			defer stop()

			rel, err := osrelease.Read(releasePath)
			if err != nil {
				log.Warn("no release file; os fields will be empty", "error", err)
				rel = osrelease.Release{Arch: osrelease.Arch()}
			}
			variant, fallback := model.ResolveVariant(variant, rel.VariantID)
			if fallback {
				log.Info("no variant named; serving the default", "variant", variant)
			}
			if rel.VariantID == "" {
				rel.VariantID = variant
			}
			m, err := model.Load(variant, groupsFile)
			if err != nil {
				return err
			}
			store, err := datastore.Open(ctx, datastorePath, datastore.OpenOptions{})
			if err != nil {
				return err
			}
			defer store.Close()
			ln, err := Listen(ctx, socketPath, socketGID)
			if err != nil {
				return err
			}
			app, err := applier.FromFlags(root, templatesDir, runnerKind)
			if err != nil {
				return err
			}
			updates, err := NewUpdates(ctx, store, rel, upd, log)
			if err != nil {
				return err
			}
			var reboot func(context.Context) error
			if rebootCommand != "" {
				reboot = CommandReboot(strings.Fields(rebootCommand))
			}
			containers := func() (any, error) { return status.Read(hostctr.DefaultPaths().Status, "/run/gantry") }
			var execer exec.Execer
			if execSocket != "" {
				execer = exec.Containerd{Socket: execSocket, Namespace: hostctr.Namespace}
			}
			srv := New(Config{Store: store, Model: m, Release: rel, Applier: app, Logger: log, Updates: updates, Reboot: reboot,
				Containers: containers, Exec: execer})
			if _, err := daemon.SdNotify(true, daemon.SdNotifyReady); err != nil {
				log.Warn("systemd notification failed", "error", err)
			}
			log.Info("serving settings API", "socket", socketPath, "variant", variant, "datastore", datastorePath)
			if readyConsole != "" {
				// At once, where the journal's copy comes when journald
				// gets to it: the boot's first sign that the API answers.
				if f, err := os.OpenFile(readyConsole, os.O_WRONLY|os.O_APPEND, 0); err == nil {
					fmt.Fprintf(f, "apiserver: the settings API is ready on %s\n", socketPath)
					f.Close()
				}
			}
			return srv.Serve(ctx, ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&datastorePath, "datastore-path", "", "datastore to serve: the \"current\" link under the datastore base")
	f.StringVar(&socketPath, "socket-path", apiclient.DefaultSocketPath, "Unix socket to listen on")
	f.IntVar(&socketGID, "socket-gid", -1, "group owning the socket (-1: leave as created)")
	f.StringVar(&variant, "variant", "", "variant whose settings model to serve (default: VARIANT_ID of the release file)")
	f.StringVar(&groupsFile, "settings-groups", model.DefaultGroupsFile, "the variant's settings groups, installed by the image builder (absent: the built-in variants)")
	f.StringVar(&releasePath, "os-release", osrelease.DefaultPath, "release file to report in /os")
	f.StringVar(&logLevel, "log-level", "info", "trace, debug, info, warn or error")
	applier.AddFlags(cmd, &root, &templatesDir, &runnerKind)
	f.StringVar(&upd.StatusDir, "updates-status-dir", "/run/cache/gantry-updates", "where the update API keeps its status and lock (tmpfs)")
	f.StringVar(&upd.RootJSON, "root-json", updog.DefaultRootJSON, "trusted root.json of the update repository (none: the update API is off)")
	f.StringVar(&upd.MetadataDir, "metadata-directory", updog.DefaultMetadataDir, "where verified update metadata is cached")
	f.StringVar(&upd.MigrationsDir, "migration-directory", updog.DefaultMigrationsDir, "where an update's migrations are cached")
	f.StringVar(&upd.Disk, "update-disk", "", "disk holding the partition sets (default: the running root's disk)")
	f.StringVar(&upd.Active, "update-active-set", "", "active set A or B, with --update-disk")
	// Not --check-inhibitors=yes: that asks logind over D-Bus, and a node
	// has neither, so every reboot failed. As root without a terminal,
	// systemctl skips the inhibitor check and falls back from logind to
	// systemd's private socket.
	f.StringVar(&readyConsole, "ready-console", "", "once serving, write a line saying so to this device (/dev/console)")
	f.StringVar(&execSocket, "exec-socket-path", hostctr.DefaultSocket, "host-containerd's socket, for GET /exec (empty: /exec answers 503)")
	f.StringVar(&rebootCommand, "reboot-command", "/usr/bin/systemctl --no-block reboot", "what POST /actions/reboot runs (it must return once the reboot is queued, so the answer gets out)")
	cmd.MarkFlagRequired("datastore-path")
	return cmd
}

// Main runs the apiserver command and returns the process exit code.
func Main(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewCommand(), args, os.Stderr)
}
