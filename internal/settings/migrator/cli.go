package migrator

import (
	"context"
	"errors"
	"github.com/gantry-os/gantry/pkg/version"
	"os"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/pkg/osrelease"
)

// NewCommand returns the migrator command line.
func NewCommand() *cobra.Command {
	var (
		datastorePath, migrationDir, manifestPath, toVersion, releasePath, logLevel string
		fromRelease                                                                 bool
		timeout                                                                     = DefaultStepTimeout
	)
	cmd := &cobra.Command{
		Use:   "migrator",
		Short: "Migrate the datastore to the version of the OS that is booting",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := cli.Logger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return cli.UsageError{Err: err}
			}
			switch {
			case toVersion != "" && fromRelease:
				return cli.UsageError{Err: errors.New("--migrate-to-version and --migrate-to-version-from-os-release exclude each other")}
			case toVersion == "" && !fromRelease:
				return cli.UsageError{Err: errors.New("one of --migrate-to-version or --migrate-to-version-from-os-release is required")}
			}
			var target version.Semver
			if fromRelease {
				rel, err := osrelease.Read(releasePath)
				if err != nil {
					return err
				}
				if target, err = version.Parse(rel.VersionID); err != nil {
					return err
				}
			} else if target, err = version.Parse(toVersion); err != nil {
				return cli.UsageError{Err: err}
			}
			opts := Options{
				Base:         ResolveBase(datastorePath),
				MigrationDir: migrationDir,
				ManifestPath: manifestPath,
				Target:       target,
				StepTimeout:  timeout,
				Logger:       log,
			}
			if cmd.Flags().Changed("os-release") {
				opts.OSRelease = releasePath
			}
			ctx, stop := cli.SignalContext(cmd.Context())
			defer stop()
			_, err = Migrate(ctx, opts)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&datastorePath, "datastore-path", "", "datastore base directory (holding the current link), or that link")
	f.StringVar(&migrationDir, "migration-directory", "", "directory holding the migration binaries named in the manifest")
	f.StringVar(&manifestPath, "manifest", "", "manifest file (JSON) whose \"migrations\" map lists the migrations between versions")
	f.StringVar(&toVersion, "migrate-to-version", "", "version x.y.z to migrate the datastore to")
	f.BoolVar(&fromRelease, "migrate-to-version-from-os-release", false, "migrate to the VERSION_ID of the release file")
	f.StringVar(&releasePath, "os-release", osrelease.DefaultPath, "release file (also passed to migrations when given)")
	f.DurationVar(&timeout, "migration-timeout", DefaultStepTimeout, "time limit of each migration binary")
	f.StringVar(&logLevel, "log-level", "info", "trace, debug, info, warn or error")
	cmd.MarkFlagRequired("datastore-path")
	cmd.MarkFlagRequired("migration-directory")
	cmd.MarkFlagRequired("manifest")
	return cmd
}

// Main runs the migrator command and returns the process exit code: 0 when
// the datastore is at the target version (or there is none yet), 1 when a
// migration failed (the datastore is left as it was), 2 on a usage error.
func Main(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewCommand(), args, os.Stderr)
}
