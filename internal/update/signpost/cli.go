package signpost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
	"github.com/gantry-os/gantry/internal/cli"
)

// NewCommand returns the signpost command line.
func NewCommand() *cobra.Command {
	var disk, active string
	cmd := &cobra.Command{
		Use:   "signpost",
		Short: "Show and change which partition set GRUB boots",
		Long: `signpost keeps the A/B boot state in the OS disk's GPT attribute bits.

On a node it finds the disk and the active set from the running root file
system. Elsewhere, --disk names an image file or block device and --active the
set to treat as running (needed by every command that changes the state).`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return cli.UsageError{Err: errors.New("no command given")}
		},
	}
	cmd.CompletionOptions.DisableDefaultCmd = true
	pf := cmd.PersistentFlags()
	pf.StringVar(&disk, "disk", "", "OS disk image file or block device (default: the disk of the running root)")
	pf.StringVar(&active, "active", "", "active set, A or B (with --disk)")

	load := func() (*State, error) {
		if disk == "" {
			if active != "" {
				return nil, cli.UsageError{Err: errors.New("--active needs --disk")}
			}
			return LoadRunning()
		}
		var id disklayout.SetID
		if active != "" {
			var err error
			if id, err = disklayout.ParseSetID(active); err != nil {
				return nil, cli.UsageError{Err: fmt.Errorf("--active: %w", err)}
			}
		}
		return Load(disk, id)
	}
	// mutate builds a command that loads the state, applies op and saves.
	mutate := func(use, short string, op func(*State) error) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				s, err := load()
				if err != nil {
					return err
				}
				if err := op(s); err != nil {
					if errors.Is(err, ErrActiveUnknown) {
						return cli.UsageError{Err: fmt.Errorf("%s on --disk needs --active A|B (the set treated as running)", use)}
					}
					return err
				}
				return s.Save()
			},
		}
	}

	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show both partition sets' flags, the active set and the set GRUB boots next",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, err := load()
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s.Status())
			}
			return s.WriteText(c.OutOrStdout())
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")

	hasSucceeded := &cobra.Command{
		Use:   "has-boot-ever-succeeded",
		Short: `Print "true" if a boot of this disk has ever been marked successful, else nothing`,
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, err := load()
			if err != nil {
				return err
			}
			if s.HasBootEverSucceeded() {
				fmt.Fprintln(c.OutOrStdout(), "true")
			}
			return nil
		},
	}

	cmd.AddCommand(
		status,
		mutate("mark-successful-boot", "Mark the active set as successfully booted (and the disk as having booted once)",
			(*State).MarkSuccessfulBoot),
		mutate("clear-inactive", "Make the inactive set unbootable before an update is written into it",
			(*State).ClearInactive),
		mutate("mark-inactive-valid", "Give the inactive set one try: its update is completely written",
			(*State).MarkInactiveValid),
		mutate("upgrade-to-inactive", "Boot the inactive set once at the next boot (it must be marked valid)",
			(*State).UpgradeToInactive),
		mutate("cancel-upgrade", "Undo upgrade-to-inactive before the reboot",
			(*State).CancelUpgrade),
		mutate("rollback-to-inactive", "Boot the inactive (previous) set at the next boot",
			(*State).RollbackToInactive),
		hasSucceeded,
		mutate("rewrite-table", "Write the partition table back unchanged (repairs a damaged copy)",
			func(*State) error { return nil }),
	)
	return cmd
}

// Main runs the signpost command and returns the process exit code: 0 on
// success, 1 when the operation fails, 2 on a usage error.
func Main(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewCommand(), args, os.Stderr)
}
