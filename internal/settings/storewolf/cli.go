package storewolf

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/pkg/model"
	"github.com/gantry-os/gantry/pkg/osrelease"
	"github.com/gantry-os/gantry/pkg/version"
)

// NewCommand returns the storewolf command line.
func NewCommand() *cobra.Command {
	var base, defaultsDir, ver, variant, groupsFile, releasePath, logLevel string
	cmd := &cobra.Command{
		Use:   "storewolf",
		Short: "Create the datastore and fill in the variant's defaults",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := cli.Logger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			rel, relErr := osrelease.Read(releasePath)
			variant, _ := model.ResolveVariant(variant, rel.VariantID)
			if ver == "" && relErr == nil {
				if _, err := version.Parse(rel.VersionID); err == nil {
					ver = rel.VersionID
				}
			}
			if ver == "" {
				ver = version.Version
				log.Info("release file names no x.y.z version; using this build's", "version", ver)
			}
			v, err := version.Parse(ver)
			if err != nil {
				return cli.UsageError{Err: err}
			}
			m, err := model.Load(variant, groupsFile)
			if err != nil {
				return err
			}
			defaults, err := LoadDefaults(defaultsDir)
			if err != nil {
				return err
			}
			res, err := Populate(cmd.Context(), Options{Base: base, Version: v, Defaults: defaults, Model: m})
			if err != nil {
				return err
			}
			log.Info("datastore ready", "dir", res.Dir, "created", res.Created, "variant", variant,
				"launch_settings", res.LaunchKeys, "live_keys", res.LiveKeys, "metadata", res.MetadataKeys)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&base, "data-store-base-path", "", "datastore base directory (holds the \"current\" link)")
	f.StringVar(&defaultsDir, "defaults-dir", "/usr/share/gantry/defaults.d", "directory of the variant's defaults (*.toml, merged in name order)")
	f.StringVar(&ver, "version", "", "datastore version x.y.z (default: VERSION_ID of the release file)")
	f.StringVar(&variant, "variant", "", "variant whose model validates the defaults (default: VARIANT_ID of the release file)")
	f.StringVar(&groupsFile, "settings-groups", model.DefaultGroupsFile, "the variant's settings groups, installed by the image builder (absent: the built-in variants)")
	f.StringVar(&releasePath, "os-release", osrelease.DefaultPath, "release file")
	f.StringVar(&logLevel, "log-level", "info", "trace, debug, info, warn or error")
	cmd.MarkFlagRequired("data-store-base-path")
	return cmd
}

// Main runs the storewolf command and returns the process exit code.
func Main(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewCommand(), args, os.Stderr)
}
