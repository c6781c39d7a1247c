package localfs

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
)

// NewCommand returns the prepare-local-fs command.
func NewCommand() *cobra.Command {
	var (
		o        Options
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "prepare-local-fs",
		Short: "Format the node's PRIVATE and DATA partitions at first boot",
		Long: `prepare-local-fs makes sure GANTRY-PRIVATE and GANTRY-DATA each hold a complete ext4
filesystem before they are mounted. A partition that already holds one is left alone. Any
other partition is formatted with mkfs.ext4 under a pending label, and gets its final label
(its GPT name) only once the filesystem is complete and synced, so a power cut during
formatting leads to formatting again, never to mounting a half-made filesystem. On a first
boot, DATA is grown to the end of its disk first when it is the disk's last partition.

On a node it works on the disk holding the running root filesystem. --disk names an image
file or block device instead.`,
		Example: `  prepare-local-fs                      # on a node, from prepare-local-fs.service
  prepare-local-fs --disk disk.img      # an image file: partitions at their offsets`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := cli.Logger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return cli.UsageError{Err: err}
			}
			o.Logger = log
			_, err = Prepare(cmd.Context(), o)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Disk, "disk", "", "OS disk image or block device (default: the disk holding the running root)")
	f.StringVar(&o.DataDisk, "data-disk", "", "the disk holding GANTRY-DATA when the OS disk does not (split plan)")
	f.StringVar(&o.Mkfs, "mkfs", DefaultMkfs, "mkfs.ext4 program")
	f.BoolVar(&o.Mount, "mount", false, "then mount DATA on /local, its var, opt and mnt on /var, /opt and /mnt, and PRIVATE on /var/lib/gantry (on a node)")
	f.StringVar(&o.LinkDir, "link-dir", DefaultLinkDir, "folder of the links to the prepared partition devices, named by GPT name (empty: none)")
	f.StringVar(&logLevel, "log-level", "info", "trace, debug, info, warn or error")
	return cmd
}

// Main runs prepare-local-fs with args and returns the process exit code: 0
// when both partitions hold a complete filesystem, 1 on failure, 2 on a
// usage error.
func Main(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewCommand(), args, os.Stderr)
}
