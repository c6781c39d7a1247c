package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/internal/imagebuild"
)

// containerCommand is `gantry container`: container images for host and
// bootstrap containers, built like the variants.
func containerCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "container", Short: "Build Gantry's container images (admin, control, bootstrap, your own)"}
	var o imagebuild.ContainerOptions
	var epoch string
	var quiet, asJSON bool
	build := &cobra.Command{
		Use:   "build NAME|FOLDER",
		Short: "Build a container image from containers/NAME/container.toml (or FOLDER) into an OCI layout, and push it where asked",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Dir = args[0]
			if fi, err := os.Stat(filepath.Join(o.Dir, imagebuild.ContainerFile)); err != nil || fi.IsDir() {
				o.Dir = filepath.Join(o.Source, "containers", args[0])
				if o.Source == "" {
					o.Dir = filepath.Join("containers", args[0])
				}
			}
			if epoch != "" {
				n, err := strconv.ParseInt(epoch, 10, 64)
				if err != nil {
					return cli.UsageError{Err: fmt.Errorf("--epoch: %w", err)}
				}
				o.Epoch = &n
			}
			if !quiet && !asJSON {
				o.Progress = cmd.ErrOrStderr()
			}
			res, err := imagebuild.BuildContainer(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", res.Name, res.Version, res.Digest)
			return nil
		},
	}
	f := build.Flags()
	f.StringVar(&o.Source, "source", "", "Gantry source tree (default: the module root above the working folder)")
	f.StringVar(&o.Out, "out", "", "output folder (default <source>/build/containers/NAME)")
	f.StringVar(&o.CacheDir, "cache-dir", "", "package cache (default: as for gantry build)")
	f.StringVar(&o.Version, "version", "", "image version label (default: the source tree's version)")
	f.StringVar(&epoch, "epoch", "", "SOURCE_DATE_EPOCH for every timestamp (default: $SOURCE_DATE_EPOCH, else the last commit's time)")
	f.BoolVar(&o.UpdateLock, "update-lock", false, "resolve the packages again even if packages.lock is current")
	f.BoolVar(&o.Locked, "locked", false, "fail instead of resolving when packages.lock is missing or stale")
	f.StringArrayVar(&o.Push, "push", nil, "push the image to REGISTRY/REPOSITORY:TAG (repeatable; loopback registries over plain HTTP)")
	f.StringArrayVar(&o.Insecure, "insecure-registry", nil, "a registry HOST[:PORT] spoken to over plain HTTP (repeatable)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no step display")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.AddCommand(build)
	return cmd
}
