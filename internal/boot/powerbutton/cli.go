package powerbutton

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
)

// NewCommand returns the power-button command line.
func NewCommand() *cobra.Command {
	var (
		cfg      Config
		modules  []string
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "power-button",
		Short: "Power the node off cleanly when the ACPI power button is pressed",
		Long: `power-button watches the input devices named "Power Button" (/sys/class/input/event*)
and, when the power key is pressed, asks systemd over /run/systemd/private to start
poweroff.target, as logind would. It is for images without udev and logind. When there
is no power button device yet, it first loads --load-modules (the ACPI button driver
and evdev) from the running kernel's module tree. It tells systemd it is ready
(Type=notify) once every button is open.`,
		Example: `  # What power-button.service runs:
  power-button`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := cli.Logger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return cli.UsageError{Err: err}
			}
			for _, m := range modules {
				if m = strings.TrimSpace(m); m != "" {
					cfg.Modules = append(cfg.Modules, m)
				}
			}
			cfg.Logger = log
			cfg.Ready = func() {
				if _, err := daemon.SdNotify(true, daemon.SdNotifyReady); err != nil {
					log.Warn("could not notify systemd", "error", err)
				}
			}
			ctx, stop := cli.SignalContext(cmd.Context())
			defer stop()
			return Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Sysfs, "sysfs", "/sys", "where sysfs is mounted")
	f.StringVar(&cfg.Dev, "dev", "/dev", "where devtmpfs is mounted")
	f.StringSliceVar(&modules, "load-modules", DefaultModules(), "kernel modules to load when there is no power button device (comma-separated)")
	f.StringVar(&cfg.ModuleDir, "module-dir", "", "module tree to load from (default: /usr/lib/modules/<running kernel>)")
	f.DurationVar(&cfg.DeviceTimeout, "device-timeout", 10*time.Second, "how long to wait for the devices after loading the modules")
	f.StringVar(&logLevel, "log-level", "info", "trace, debug, info, warn or error")
	return cmd
}

// Main runs the power-button command and returns the process exit code.
func Main(ctx context.Context, args []string) int {
	return cli.Execute(ctx, NewCommand(), args, os.Stderr)
}
