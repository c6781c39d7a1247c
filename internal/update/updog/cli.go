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
	c := apiclient.New(socket)
	body, err := c.Raw(ctx, http.MethodGet, "/?prefix=settings.updates", nil)
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
	var settings []byte
	for _, prefix := range []string{"settings.network", "settings.kubernetes"} {
		body, err := c.Raw(ctx, http.MethodGet, "/?prefix="+prefix, nil)
		if err != nil {
			return fmt.Errorf("read %s: %w", prefix, err)
		}
		if settings, err = mergeSettings(settings, body); err != nil {
			return err
		}
	}
	return ApplyProxy(settings, cfg)
}

// mergeSettings adds the settings object of an API answer to acc (both
// JSON; acc may be empty).
func mergeSettings(acc, answer []byte) ([]byte, error) {
	var doc struct {
		Settings map[string]json.RawMessage `json:"settings"`
	}
	if err := json.Unmarshal(answer, &doc); err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	all := map[string]json.RawMessage{}
	if len(acc) > 0 {
		if err := json.Unmarshal(acc, &all); err != nil {
			return nil, err
		}
	}
	for k, v := range doc.Settings {
		all[k] = v
	}
	return json.Marshal(all)
}

// NewCommand returns the updog command line. openSets opens the node's
// boot sets for the given --disk and --active flags.
func NewCommand(stdout, stderr io.Writer, openSets func(disk, active string) func() (BootSets, error)) *cobra.Command {
	u := &updogCLI{stdout: stdout, stderr: stderr, openSets: openSets, n: &Node{}}
	root := &cobra.Command{
		Use:   "updog",
		Short: "Find, download and apply OS updates from the TUF-signed update repository",
		PersistentPreRunE: func(c *cobra.Command, _ []string) error {
			if c.Name() == "update-apply" || c.Name() == "update-revert" || c.Name() == "revert" {
				u.n.OpenSets = openSets(u.disk, u.active)
				return nil
			}
			return u.setup(c)
		},
	}
	u.persistentFlags(root)
	check, update, updateImage, apply, revert := u.checkCommand(), u.updateCommand(), u.updateImageCommand(), u.applyCommand(), u.revertCommand()
	for _, c := range []*cobra.Command{check, update, updateImage} {
		c.Flags().StringVarP(&u.image, "image", "i", "", "take this version (may be a downgrade)")
		c.Flags().BoolVarP(&u.now, "now", "n", false, "ignore waves")
		c.Flags().BoolVar(&u.now, "ignore-waves", false, "ignore waves")
	}
	for _, c := range []*cobra.Command{update, apply} {
		c.Flags().BoolVarP(&u.reboot, "reboot", "r", false, "reboot when done")
	}
	root.AddCommand(check, update, updateImage, apply, revert)
	return root
}

// updogCLI is one run of the updog command line: its flags and the node
// they configure.
type updogCLI struct {
	stdout, stderr io.Writer
	openSets       func(disk, active string) func() (BootSets, error)
	n              *Node

	cfg                             Config
	socket, releasePath, disk       string
	active, image, logLevel         string
	all, asJSON, now, reboot, noAPI bool
}

// persistentFlags are the flags of every subcommand.
func (u *updogCLI) persistentFlags(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.StringVar(&u.socket, "socket-path", apiclient.DefaultSocketPath, "settings API to read settings.updates from")
	pf.BoolVar(&u.noAPI, "no-api", false, "do not read settings from the API; use the flags only")
	pf.StringVar(&u.cfg.MetadataBaseURL, "metadata-base-url", "", "repository metadata URL (default: settings.updates.metadata-base-url)")
	pf.StringVar(&u.cfg.TargetsBaseURL, "targets-base-url", "", "repository targets URL (default: settings.updates.targets-base-url)")
	pf.StringVar(&u.cfg.VersionLock, "version-lock", "", "latest or a version (default: settings.updates.version-lock)")
	pf.StringVar(&u.cfg.TrustedRoot, "root-json", DefaultRootJSON, "the trusted root.json shipped in the image")
	pf.StringVar(&u.cfg.MetadataDir, "metadata-directory", DefaultMetadataDir, "where verified repository metadata is cached")
	pf.StringVar(&u.cfg.MigrationsDir, "migration-directory", DefaultMigrationsDir, "where the migrations of a chosen update are cached")
	pf.StringVar(&u.releasePath, "os-release", osrelease.DefaultPath, "release file of the running OS")
	pf.StringVar(&u.disk, "disk", "", "disk holding the partition sets (default: the disk of the running root)")
	pf.StringVar(&u.active, "active", "", "the active set, A or B (default: the set of the running root)")
	pf.StringVar(&u.logLevel, "log-level", "info", "trace, debug, info, warn or error")
}

// setup configures the node for the commands that talk to the repository:
// the release, settings.updates (unless --no-api), the boot sets.
func (u *updogCLI) setup(c *cobra.Command) error {
	log, err := cli.Logger(u.stderr, u.logLevel)
	if err != nil {
		return err
	}
	rel, err := osrelease.Read(u.releasePath)
	if err != nil {
		return err
	}
	u.cfg.Release = rel
	if !u.noAPI {
		if err := SettingsConfig(c.Context(), u.socket, &u.cfg); err != nil {
			return err
		}
	}
	if err := u.cfg.RequireRepository(); err != nil {
		return fmt.Errorf("%w (or --metadata-base-url/--targets-base-url)", err)
	}
	u.n.Config, u.n.Logger = u.cfg, log
	u.n.OpenSets = u.openSets(u.disk, u.active)
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		u.n.Progress = terminalProgress(u.stderr)
	}
	return nil
}

// imageVersion is --image, if given.
func (u *updogCLI) imageVersion() (*version.Semver, error) {
	if u.image == "" {
		return nil, nil
	}
	v, err := version.Parse(u.image)
	if err != nil {
		return nil, cli.UsageError{Err: fmt.Errorf("--image: %w", err)}
	}
	return &v, nil
}

func (u *updogCLI) printUpdate(up *manifest.Update) {
	if u.asJSON {
		b, _ := json.MarshalIndent(up, "", "  ")
		fmt.Fprintf(u.stdout, "%s\n", b)
		return
	}
	fmt.Fprintf(u.stdout, "%s %s\n", up.Variant, up.Version)
}

// checkCommand is check-update: the update this node would take, or with
// --all every applicable one. No update exits 1.
func (u *updogCLI) checkCommand() *cobra.Command {
	check := &cobra.Command{
		Use: "check-update", Aliases: []string{"whats"}, Short: "Print the update this node would take", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			img, err := u.imageVersion()
			if err != nil {
				return err
			}
			avail, chosen, _, err := u.n.Check(c.Context(), img, u.now)
			if err != nil {
				return err
			}
			if u.all {
				if u.asJSON {
					if avail == nil {
						avail = []manifest.Update{}
					}
					b, _ := json.MarshalIndent(avail, "", "  ")
					fmt.Fprintf(u.stdout, "%s\n", b)
				} else {
					for _, up := range avail {
						fmt.Fprintf(u.stderr, "%s %s\n", up.Variant, up.Version)
					}
				}
				return nil
			}
			if chosen == nil {
				return errNoUpdate
			}
			u.printUpdate(chosen)
			return nil
		},
	}
	check.Flags().BoolVarP(&u.all, "all", "a", false, "list every applicable update")
	check.Flags().BoolVarP(&u.asJSON, "json", "j", false, "print JSON")
	return check
}

// writeImage writes the chosen update into the inactive set; nil when
// there is none.
func (u *updogCLI) writeImage(c *cobra.Command) (*manifest.Update, error) {
	img, err := u.imageVersion()
	if err != nil {
		return nil, err
	}
	_, chosen, client, err := u.n.Check(c.Context(), img, u.now)
	if err != nil {
		return nil, err
	}
	if chosen == nil {
		fmt.Fprintln(u.stderr, "No update required")
		return nil, nil
	}
	return chosen, u.n.WriteImage(c.Context(), client, chosen)
}

// updateCommand is update: write the chosen update and activate it.
func (u *updogCLI) updateCommand() *cobra.Command {
	return &cobra.Command{
		Use: "update", Short: "Write the chosen update and make it boot next", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			up, err := u.writeImage(c)
			if err != nil || up == nil {
				return err
			}
			if err := u.n.Activate(); err != nil {
				return err
			}
			fmt.Fprintf(u.stdout, "Update applied: %s %s\n", up.Variant, up.Version)
			return maybeReboot(c.Context(), u.reboot)
		},
	}
}

// updateImageCommand is update-image: write without activating.
func (u *updogCLI) updateImageCommand() *cobra.Command {
	return &cobra.Command{
		Use: "update-image", Short: "Write the chosen update into the inactive partitions, without activating it", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			up, err := u.writeImage(c)
			if err == nil && up != nil {
				fmt.Fprintf(u.stdout, "Update written: %s %s\n", up.Variant, up.Version)
			}
			return err
		},
	}
}

// applyCommand is update-apply: make the written update boot next.
func (u *updogCLI) applyCommand() *cobra.Command {
	return &cobra.Command{
		Use: "update-apply", Short: "Make the written update boot next", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := u.n.Activate(); err != nil {
				return err
			}
			return maybeReboot(c.Context(), u.reboot)
		},
	}
}

// revertCommand is update-revert: undo update-apply before rebooting.
func (u *updogCLI) revertCommand() *cobra.Command {
	return &cobra.Command{
		Use: "update-revert", Aliases: []string{"revert"}, Short: "Undo update-apply before rebooting", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return u.n.Revert() },
	}
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
