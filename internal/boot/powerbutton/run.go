package powerbutton

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/gantry-os/gantry/internal/boot/initrd"
)

// DefaultModules returns the modules loaded when no power button is found: the ACPI button
// driver, which creates the input devices, and evdev, which gives them
// /dev/input/eventN. Debian's kernels build both as modules, and without
// udev nothing else loads them.
func DefaultModules() []string { return []string{"button", "evdev"} }

// Config is one run of the power-button watcher.
type Config struct {
	// Sysfs is where sysfs is mounted; empty means /sys.
	Sysfs string
	// Dev is where devtmpfs is mounted; empty means /dev.
	Dev string
	// Modules are loaded, with their dependencies, from ModuleDir when no
	// power button is found at start; ModuleDir empty means
	// /usr/lib/modules/<running kernel>.
	Modules   []string
	ModuleDir string
	// DeviceTimeout is how long to wait for the buttons and their nodes
	// to appear after loading the modules; zero means 10 s.
	DeviceTimeout time.Duration
	// Insert loads one module file and reports whether the kernel inserted
	// it; nil means initrd.InsertModule (finit_module).
	Insert func(path string) (bool, error)
	// PowerOff is called on each press and returns what it started; nil
	// means SystemdPowerOff.
	PowerOff func(ctx context.Context) (string, error)
	// Ready is called once every button's node is open.
	Ready  func()
	Logger *slog.Logger
}

// Run watches the power buttons until ctx is done, and powers the node off
// on every press. It returns nil when ctx ends it, and an error when there
// is no power button or one of their devices fails.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Sysfs == "" {
		cfg.Sysfs = "/sys"
	}
	if cfg.Dev == "" {
		cfg.Dev = "/dev"
	}
	if cfg.DeviceTimeout == 0 {
		cfg.DeviceTimeout = 10 * time.Second
	}
	powerOff := cfg.PowerOff
	if powerOff == nil {
		powerOff = SystemdPowerOff
	}

	devs, err := findOrLoad(ctx, cfg, log)
	if err != nil {
		return err
	}
	files, err := openAll(ctx, devs, cfg.DeviceTimeout)
	if err != nil {
		return err
	}
	for _, d := range devs {
		log.Info("watching the power button", "device", d.Path, "phys", d.Phys)
	}
	if cfg.Ready != nil {
		cfg.Ready()
	}

	presses := make(chan Device, 4)
	failed := make(chan error, len(files))
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		go func(d Device, f *os.File) {
			defer wg.Done()
			for {
				ev, err := ReadEvent(f)
				if err != nil {
					failed <- fmt.Errorf("power button %s: %w", d.Path, err)
					return
				}
				if IsPowerPress(ev) {
					select {
					case presses <- d:
					default: // a poweroff request is already pending
					}
				}
			}
		}(devs[i], f)
	}
	stop := func() {
		for _, f := range files {
			f.Close() // ends the blocked reads
		}
		wg.Wait()
	}

	for {
		select {
		case <-ctx.Done():
			stop()
			log.Info("stopped watching the power button")
			return nil
		case err := <-failed:
			stop()
			if ctx.Err() != nil {
				return nil
			}
			return err
		case d := <-presses:
			log.Info("power button pressed; asking systemd to power off", "device", d.Path)
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			what, err := powerOff(pctx)
			cancel()
			if err != nil {
				log.Error("power off failed; press again to retry", "error", err)
				continue
			}
			log.Info("power off started", "job", what)
		}
	}
}

// findOrLoad returns the power buttons, loading cfg.Modules first when
// there are none, and waiting up to cfg.DeviceTimeout for them.
func findOrLoad(ctx context.Context, cfg Config, log *slog.Logger) ([]Device, error) {
	devs, err := FindButtons(cfg.Sysfs, cfg.Dev)
	if err != nil || len(devs) > 0 {
		return devs, err
	}
	if len(cfg.Modules) == 0 {
		return nil, fmt.Errorf("no %q input device in %s/class/input and no modules to load", ButtonName, cfg.Sysfs)
	}
	inserted, err := loadModules(cfg)
	if err != nil {
		return nil, err
	}
	log.Info("loaded kernel modules for the power button", "wanted", cfg.Modules, "inserted", inserted)
	wctx, cancel := context.WithTimeout(ctx, cfg.DeviceTimeout)
	defer cancel()
	for {
		devs, err := FindButtons(cfg.Sysfs, cfg.Dev)
		if err != nil || len(devs) > 0 {
			return devs, err
		}
		if err := sleep(wctx, 50*time.Millisecond); err != nil {
			return nil, fmt.Errorf("no %q input device in %s/class/input %v after loading %s: the machine may have no ACPI power button",
				ButtonName, cfg.Sysfs, cfg.DeviceTimeout, strings.Join(cfg.Modules, ", "))
		}
	}
}

// loadModules loads cfg.Modules and their dependencies, in the order
// initrd.ResolveModules gives, skipping those sysfs lists as loaded.
func loadModules(cfg Config) ([]string, error) {
	dir := cfg.ModuleDir
	if dir == "" {
		rel, err := os.ReadFile("/proc/sys/kernel/osrelease")
		if err != nil {
			return nil, fmt.Errorf("find the kernel's modules: %w", err)
		}
		dir = filepath.Join("/usr/lib/modules", strings.TrimSpace(string(rel)))
	}
	mods, err := initrd.ResolveModules(dir, cfg.Modules)
	if err != nil {
		return nil, err
	}
	insert := cfg.Insert
	if insert == nil {
		insert = initrd.InsertModule
	}
	var inserted []string
	for _, m := range mods {
		if _, err := os.Stat(filepath.Join(cfg.Sysfs, "module", m.Name)); err == nil {
			continue
		}
		ok, err := insert(m.Path)
		if err != nil {
			return inserted, err
		}
		if ok {
			inserted = append(inserted, m.Name)
		}
	}
	return inserted, nil
}

// openAll opens every device node, waiting up to timeout for devtmpfs to
// create it.
func openAll(ctx context.Context, devs []Device, timeout time.Duration) ([]*os.File, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var files []*os.File
	for _, d := range devs {
		for {
			f, err := os.Open(d.Path)
			if err == nil {
				files = append(files, f)
				break
			}
			if !errors.Is(err, os.ErrNotExist) || sleep(wctx, 50*time.Millisecond) != nil {
				for _, f := range files {
					f.Close()
				}
				return nil, fmt.Errorf("open power button: %w", err)
			}
		}
	}
	return files, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// SystemdPowerOff asks systemd, over its private socket
// /run/systemd/private (the image has no D-Bus daemon), to start
// poweroff.target with mode "replace-irreversibly", as logind does for the
// power key. It returns the job's object path once systemd queued it.
func SystemdPowerOff(ctx context.Context) (string, error) {
	conn, err := sddbus.NewSystemdConnectionContext(ctx)
	if err != nil {
		return "", fmt.Errorf("connect to systemd: %w", err)
	}
	defer conn.Close()
	id, err := conn.StartUnitContext(ctx, "poweroff.target", "replace-irreversibly", nil)
	if err != nil {
		return "", fmt.Errorf("start poweroff.target: %w", err)
	}
	return fmt.Sprintf("poweroff.target (job %d)", id), nil
}
