package updog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/pkg/version"
	"io"
	"net/http"
	"os"
	"os/exec"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/internal/update/manifest"
	"github.com/gantry-os/gantry/pkg/apiclient"
	"github.com/gantry-os/gantry/pkg/osrelease"
)

// Node defaults.
const (
	DefaultRootJSON      = "/usr/share/gantry/root.json"
	DefaultMetadataDir   = "/var/cache/gantry/metadata"
	DefaultMigrationsDir = "/var/lib/gantry/migrations"
)

// errNoUpdate makes check-update exit 1, as Bottlerocket's updog does.
var errNoUpdate = errors.New("No update available")

// SettingsConfig fills the repository settings from the API's
// settings.updates (RepoSettings.Apply); flags given explicitly win.
func SettingsConfig(ctx context.Context, socket string, cfg *Config) error {
	body, err := apiclient.New(socket).Raw(ctx, http.MethodGet, "/?prefix=settings.updates", nil)
	if err != nil {
		return fmt.Errorf("read settings.updates: %w", err)
	}
	var doc struct {
		Settings struct {
			Updates json.RawMessage `json:"updates"`
		} `json:"settings"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("settings.updates: %w", err)
	}
	s, err := ParseRepoSettings(doc.Settings.Updates)
	if err != nil {
		return err
	}
	if err := s.Apply(cfg); err != nil && !errors.Is(err, ErrNoRepository) {
		return err
	}
	return nil
}

// NewCommand returns the updog command line. openSets opens the node's
// boot sets for the given --disk and --active flags.
func NewCommand(stdout, stderr io.Writer, openSets func(disk, active string) func() (BootSets, error)) *cobra.Command {
	var (
		cfg                             Config
		socket, releasePath, disk       string
		active, image, logLevel         string
		all, asJSON, now, reboot, noAPI bool
	)
	n := &Node{}
	setup := func(c *cobra.Command) error {
		log, err := cli.Logger(stderr, logLevel)
		if err != nil {
			return err
		}
		rel, err := osrelease.Read(releasePath)
		if err != nil {
			return err
		}
		cfg.Release = rel
		if !noAPI {
			if err := SettingsConfig(c.Context(), socket, &cfg); err != nil {
				return err
			}
		}
		if err := cfg.RequireRepository(); err != nil {
			return fmt.Errorf("%w (or --metadata-base-url/--targets-base-url)", err)
		}
		n.Config, n.Logger = cfg, log
		n.OpenSets = openSets(disk, active)
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			n.Progress = terminalProgress(stderr)
		}
		return nil
	}
	imageVersion := func() (*version.Semver, error) {
		if image == "" {
			return nil, nil
		}
		v, err := version.Parse(image)
		if err != nil {
			return nil, cli.UsageError{Err: fmt.Errorf("--image: %w", err)}
		}
		return &v, nil
	}
	printUpdate := func(u *manifest.Update) {
		if asJSON {
			b, _ := json.MarshalIndent(u, "", "  ")
			fmt.Fprintf(stdout, "%s\n", b)
			return
		}
		fmt.Fprintf(stdout, "%s %s\n", u.Variant, u.Version)
	}
	root := &cobra.Command{
		Use:   "updog",
		Short: "Find, download and apply OS updates from the TUF-signed update repository",
		PersistentPreRunE: func(c *cobra.Command, _ []string) error {
			if c.Name() == "update-apply" || c.Name() == "update-revert" || c.Name() == "revert" {
				n.OpenSets = openSets(disk, active)
				return nil
			}
			return setup(c)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&socket, "socket-path", apiclient.DefaultSocketPath, "settings API to read settings.updates from")
	pf.BoolVar(&noAPI, "no-api", false, "do not read settings from the API; use the flags only")
	pf.StringVar(&cfg.MetadataBaseURL, "metadata-base-url", "", "repository metadata URL (default: settings.updates.metadata-base-url)")
	pf.StringVar(&cfg.TargetsBaseURL, "targets-base-url", "", "repository targets URL (default: settings.updates.targets-base-url)")
	pf.StringVar(&cfg.VersionLock, "version-lock", "", "latest or a version (default: settings.updates.version-lock)")
	pf.StringVar(&cfg.TrustedRoot, "root-json", DefaultRootJSON, "the trusted root.json shipped in the image")
	pf.StringVar(&cfg.MetadataDir, "metadata-directory", DefaultMetadataDir, "where verified repository metadata is cached")
	pf.StringVar(&cfg.MigrationsDir, "migration-directory", DefaultMigrationsDir, "where the migrations of a chosen update are cached")
	pf.StringVar(&releasePath, "os-release", osrelease.DefaultPath, "release file of the running OS")
	pf.StringVar(&disk, "disk", "", "disk holding the partition sets (default: the disk of the running root)")
	pf.StringVar(&active, "active", "", "the active set, A or B (default: the set of the running root)")
	pf.StringVar(&logLevel, "log-level", "info", "trace, debug, info, warn or error")

	check := &cobra.Command{
		Use: "check-update", Aliases: []string{"whats"}, Short: "Print the update this node would take", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			img, err := imageVersion()
			if err != nil {
				return err
			}
			avail, chosen, _, err := n.Check(c.Context(), img, now)
			if err != nil {
				return err
			}
			if all {
				if asJSON {
					if avail == nil {
						avail = []manifest.Update{}
					}
					b, _ := json.MarshalIndent(avail, "", "  ")
					fmt.Fprintf(stdout, "%s\n", b)
				} else {
					for _, u := range avail {
						fmt.Fprintf(stderr, "%s %s\n", u.Variant, u.Version)
					}
				}
				return nil
			}
			if chosen == nil {
				return errNoUpdate
			}
			printUpdate(chosen)
			return nil
		},
	}
	writeImage := func(c *cobra.Command) (*manifest.Update, error) {
		img, err := imageVersion()
		if err != nil {
			return nil, err
		}
		_, chosen, client, err := n.Check(c.Context(), img, now)
		if err != nil {
			return nil, err
		}
		if chosen == nil {
			fmt.Fprintln(stderr, "No update required")
			return nil, nil
		}
		return chosen, n.WriteImage(c.Context(), client, chosen)
	}
	update := &cobra.Command{
		Use: "update", Short: "Write the chosen update and make it boot next", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			u, err := writeImage(c)
			if err != nil || u == nil {
				return err
			}
			if err := n.Activate(); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Update applied: %s %s\n", u.Variant, u.Version)
			return maybeReboot(c.Context(), reboot)
		},
	}
	updateImage := &cobra.Command{
		Use: "update-image", Short: "Write the chosen update into the inactive partitions, without activating it", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			u, err := writeImage(c)
			if err == nil && u != nil {
				fmt.Fprintf(stdout, "Update written: %s %s\n", u.Variant, u.Version)
			}
			return err
		},
	}
	apply := &cobra.Command{
		Use: "update-apply", Short: "Make the written update boot next", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := n.Activate(); err != nil {
				return err
			}
			return maybeReboot(c.Context(), reboot)
		},
	}
	revert := &cobra.Command{
		Use: "update-revert", Aliases: []string{"revert"}, Short: "Undo update-apply before rebooting", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return n.Revert() },
	}
	for _, c := range []*cobra.Command{check, update, updateImage} {
		c.Flags().StringVarP(&image, "image", "i", "", "take this version (may be a downgrade)")
		c.Flags().BoolVarP(&now, "now", "n", false, "ignore waves")
		c.Flags().BoolVar(&now, "ignore-waves", false, "ignore waves")
	}
	check.Flags().BoolVarP(&all, "all", "a", false, "list every applicable update")
	check.Flags().BoolVarP(&asJSON, "json", "j", false, "print JSON")
	for _, c := range []*cobra.Command{update, apply} {
		c.Flags().BoolVarP(&reboot, "reboot", "r", false, "reboot when done")
	}
	root.AddCommand(check, update, updateImage, apply, revert)
	return root
}

func maybeReboot(ctx context.Context, reboot bool) error {
	if !reboot {
		return nil
	}
	out, err := exec.CommandContext(ctx, "/usr/bin/systemctl", "reboot").CombinedOutput()
	if err != nil {
		return fmt.Errorf("reboot: %w: %s", err, out)
	}
	return nil
}

// terminalProgress draws a progress bar on a terminal.
func terminalProgress(w io.Writer) Progress {
	start := time.Now()
	return func(name string, done, total int64) {
		pct := float64(done) / float64(max(total, 1))
		bar := int(pct * 30)
		rate := float64(done) / max(time.Since(start).Seconds(), 0.001) / (1 << 20)
		fmt.Fprintf(w, "\r%-48.48s [%-30s] %5.1f%% %6.1f MiB/s", name, repeat('#', bar), pct*100, rate)
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}

func repeat(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

// Main runs updog with the given boot-set opener and returns the exit code.
func Main(ctx context.Context, args []string, openSets func(disk, active string) func() (BootSets, error)) int {
	return cli.Execute(ctx, NewCommand(os.Stdout, os.Stderr, openSets), args, os.Stderr)
}
