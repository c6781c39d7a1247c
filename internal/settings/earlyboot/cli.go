package earlyboot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/pkg/apiclient"
	"github.com/gantry-os/gantry/pkg/model"
	"github.com/gantry-os/gantry/pkg/osrelease"
)

// Node defaults.
const (
	DefaultMarker      = "/var/lib/gantry/early-boot-config.ran"
	LocalDefaultsFile  = "/local/user-data-defaults.toml"
	LocalUserDataFile  = "/var/lib/gantry/user-data.toml"
	LocalOverridesFile = "/local/user-data-overrides.toml"
	DefaultSysfs       = "/sys"
)

// DefaultProviders is the node's provider list, in precedence order (later
// ones win): local defaults, the local user-data file, QEMU fw_cfg, the config
// disk, IMDS when imds is true, and the local overrides last.
func DefaultProviders(configDiskLabel string, imds bool) []Provider {
	ps := []Provider{
		FileProvider{Label: "local-defaults", Path: LocalDefaultsFile},
		FileProvider{Label: "local-user-data", Path: LocalUserDataFile},
		FwCfgProvider{Sysfs: DefaultSysfs},
		ConfigDiskProvider{Device: DefaultConfigDisk(configDiskLabel), Label: configDiskLabel},
	}
	if imds {
		ps = append(ps, IMDSProvider{Client: NewIMDSClient(DefaultIMDSURL)})
	}
	return append(ps, FileProvider{Label: "local-overrides", Path: LocalOverridesFile})
}

// providerFlag is a flag that adds a provider where it appears on the
// command line, so explicit providers keep the order they are given in.
type providerFlag struct {
	list *[]func(label string) Provider
	kind string
	make func(arg, label string) Provider
}

func (f providerFlag) String() string { return "" }
func (f providerFlag) Type() string   { return f.kind }
func (f providerFlag) Set(arg string) error {
	if arg == "" {
		return fmt.Errorf("empty %s", f.kind)
	}
	*f.list = append(*f.list, func(label string) Provider { return f.make(arg, label) })
	return nil
}

// NewCommand returns the early-boot-config command line.
func NewCommand() *cobra.Command {
	var (
		socketPath, marker, variant, groupsFile, releasePath, logLevel, label string
		imds                                                                  bool
		explicit                                                              []func(label string) Provider
	)
	cmd := &cobra.Command{
		Use:   "early-boot-config",
		Short: "Send first-boot user data to the settings API's launch transaction",
		Long: `early-boot-config runs once per node, at first boot. It reads user data (TOML, optionally
gzip-compressed; only its [settings] table is used) from each provider, merges them in order
(later providers override earlier ones key by key; lists are replaced whole), validates the result
against the variant's settings model, and sends it in one PATCH /settings?tx=gantry-launch.
Invalid user data from any provider stops the run before anything is sent, and the error names
the provider, the line and the key. The marker file is written after success; while it exists,
the command does nothing.

Without provider flags, the node's providers are used, in this order:
  local-defaults    ` + LocalDefaultsFile + `
  local-user-data   ` + LocalUserDataFile + `
  fw_cfg            ` + DefaultSysfs + "/" + FwCfgPath + `
                    (QEMU: -fw_cfg name=opt/gantry/user-data,file=user-data.toml)
  config-disk       ` + DefaultConfigDisk(ConfigDiskLabel) + ` (ISO 9660, volume label
                    ` + ConfigDiskLabel + `, file ` + ConfigDiskFile + ` at its root; read without mounting)
  imds              ` + DefaultIMDSURL + ` (only with --imds)
  local-overrides   ` + LocalOverridesFile + `
A provider with nothing there (missing file, device or entry, IMDS 404) is skipped.

With provider flags (--user-data-file, --fw-cfg-sysfs, --config-disk, --imds-url), exactly those
providers are used, in the order the flags are given.`,
		Example: `  # On a node (what the unit runs):
  early-boot-config
  # In a dev tree, unprivileged:
  early-boot-config --socket-path run/api.sock --marker run/early-boot-config.ran \
      --user-data-file examples/user-data.toml --user-data-file my-overrides.toml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := cli.Logger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return cli.UsageError{Err: err}
			}
			ctx, stop := cli.SignalContext(cmd.Context())
			defer stop()

			var providers []Provider
			if len(explicit) > 0 {
				if imds {
					return cli.UsageError{Err: errors.New("--imds adds IMDS to the node's default providers; among explicit providers, give --imds-url")}
				}
				for _, mk := range explicit {
					providers = append(providers, mk(label))
				}
			} else {
				providers = DefaultProviders(label, imds)
			}

			api := apiclient.New(socketPath)
			m, err := resolveModel(ctx, api, variant, groupsFile, releasePath, log)
			if err != nil {
				return err
			}
			res, err := Run(ctx, Config{API: api, Model: m, Providers: providers, Marker: marker, Logger: log})
			if err != nil {
				return err
			}
			if !res.Skipped {
				log.Info("early-boot-config done", "sources", len(res.Sources), "marker", marker)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&socketPath, "socket-path", apiclient.DefaultSocketPath, "Unix socket of the settings API")
	f.StringVar(&marker, "marker", DefaultMarker, "file that records a successful run; while it exists, nothing is done")
	f.StringVar(&variant, "variant", "", "variant whose settings model validates the user data (default: VARIANT_ID of the release file, else the API's)")
	f.StringVar(&groupsFile, "settings-groups", model.DefaultGroupsFile, "the variant's settings groups, installed by the image builder (absent: the built-in variants)")
	f.StringVar(&releasePath, "os-release", osrelease.DefaultPath, "release file naming the variant")
	f.StringVar(&logLevel, "log-level", "info", "trace, debug, info, warn or error")
	f.StringVar(&label, "config-disk-label", ConfigDiskLabel, "volume label of the config disk (and its default /dev/disk/by-label/ path)")
	f.BoolVar(&imds, "imds", false, "add AWS IMDS ("+DefaultIMDSURL+") to the node's default providers, before local-overrides")
	f.Var(providerFlag{&explicit, "path", func(arg, _ string) Provider { return FileProvider{Path: arg} }},
		"user-data-file", "provider: a user-data file (repeatable; a missing file is skipped)")
	f.Var(providerFlag{&explicit, "dir", func(arg, _ string) Provider { return FwCfgProvider{Sysfs: arg} }},
		"fw-cfg-sysfs", "provider: QEMU fw_cfg below this sysfs root (e.g. /sys)")
	f.Var(providerFlag{&explicit, "path", func(arg, label string) Provider { return ConfigDiskProvider{Device: arg, Label: label} }},
		"config-disk", "provider: a config disk (ISO 9660 block device or image file)")
	f.Var(providerFlag{&explicit, "url", func(arg, _ string) Provider { return IMDSProvider{Client: NewIMDSClient(arg)} }},
		"imds-url", "provider: AWS IMDS at this base URL (e.g. "+DefaultIMDSURL+")")
	return cmd
}

// resolveModel picks the variant as apiserver does (--variant, then the
// release file), falling back to asking the API which variant it serves, so
// validation here matches the server's.
func resolveModel(ctx context.Context, api *apiclient.Client, variant, groupsFile, releasePath string, log *slog.Logger) (*model.Model, error) {
	if variant == "" {
		if rel, err := osrelease.Read(releasePath); err == nil {
			variant = rel.VariantID
		} else {
			log.Debug("no release file", "error", err)
		}
	}
	if _, err := os.Stat(groupsFile); variant == "" && err == nil {
		// An image: the groups file names the variant.
		return model.Load("", groupsFile)
	}
	if variant == "" {
		v, err := apiVariant(ctx, api)
		if err != nil {
			log.Warn("cannot ask the API for its variant; using the default", "variant", model.DefaultVariant, "error", err)
			v = model.DefaultVariant
		}
		variant = v
	}
	m, err := model.Load(variant, groupsFile)
	if err != nil {
		return nil, fmt.Errorf("settings model: %w", err)
	}
	return m, nil
}

func apiVariant(ctx context.Context, api *apiclient.Client) (string, error) {
	body, err := api.Raw(ctx, http.MethodGet, "/os", nil)
	if err != nil {
		return "", err
	}
	var rel osrelease.Release
	if err := json.Unmarshal(body, &rel); err != nil {
		return "", fmt.Errorf("GET /os: %w", err)
	}
	if rel.VariantID == "" {
		return "", errors.New("GET /os names no variant")
	}
	return rel.VariantID, nil
}

// Main runs the early-boot-config command and returns the process exit code.
func Main(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewCommand(), args, os.Stderr)
}
