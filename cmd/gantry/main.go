// Command gantry is Gantry's build and publishing tool. Each subcommand
// comes from the package that owns it: `gantry repo` from tufrepo.
package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/internal/devtools/cluster"
	"github.com/gantry-os/gantry/internal/devtools/k8stools"
	"github.com/gantry-os/gantry/internal/devtools/qemu"
	"github.com/gantry-os/gantry/internal/imagebuild"
	"github.com/gantry-os/gantry/internal/update/tufrepo"
)

func main() {
	ctx, stop := cli.SignalContext(context.Background())
	root := &cobra.Command{
		Use:   "gantry",
		Short: "Build and publish Gantry",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.AddCommand(tufrepo.NewCommand())
	root.AddCommand(imagebuild.NewCommand())
	root.AddCommand(qemu.NewCommand())
	root.AddCommand(containerCommand())
	root.AddCommand(k8stools.NewCommand())
	root.AddCommand(cluster.NewCommand())
	code := cli.Execute(ctx, root, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
