// Package preload is the command line of preload-images (package
// internal/containers/preload): the OS image's own container images into
// the orchestrator's containerd at boot.
package preload

import (
	"context"
	"fmt"
	"os"

	client "github.com/containerd/containerd/v2/client"
	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/internal/containers/preload"
)

// NewCommand returns preload-images' command line.
func NewCommand() *cobra.Command {
	address, namespace := "/run/containerd/containerd.sock", "k8s.io"
	o := preload.Options{Dir: "/usr/share/gantry/images", Prefix: "ghcr.io/gantry-os"}
	cmd := &cobra.Command{
		Use:   "preload-images",
		Short: "Import the OS image's container images (OCI layouts) into containerd and unpack them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client.New(address, client.WithDefaultNamespace(namespace))
			if err != nil {
				return fmt.Errorf("connect to containerd at %s: %w", address, err)
			}
			defer c.Close()
			names, err := preload.Import(cmd.Context(), c, o)
			for _, n := range names {
				fmt.Fprintf(cmd.OutOrStdout(), "preload-images: %s in namespace %s\n", n, namespace)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&address, "address", address, "containerd's socket")
	f.StringVar(&namespace, "namespace", namespace, "containerd namespace (the CRI's is k8s.io)")
	f.StringVar(&o.Dir, "dir", o.Dir, "folder of OCI image layouts, one per image")
	f.StringVar(&o.Prefix, "prefix", o.Prefix, "put before each image's ref name")
	return cmd
}

// Main runs preload-images.
func Main(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewCommand(), args, os.Stderr)
}
