// Package hostcontainers carries settings.host-containers out on the node:
// it is the host-containers service's restart command. For each host
// container a change touches it writes the persistent directory and the
// decoded user data, then stops the container's unit
// (host-containers@<name>.service) and starts it again when it is enabled.
// A change outside settings.host-containers (the registry, the network)
// touches every container. At runtime it waits for each start and reports
// why a container did not come up (host-ctr's status), so that the error
// reaches whoever committed the change; at boot it only queues the starts.
package hostcontainers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gantry-os/gantry/internal/containers/hostctr"
	"github.com/gantry-os/gantry/pkg/apiclient"
)

// Settings is one host container's settings, as the API returns them.
type Settings struct {
	Source       string   `json:"source"`
	Enabled      bool     `json:"enabled"`
	Superpowered bool     `json:"superpowered"`
	UserData     string   `json:"user-data"`
	Command      []string `json:"command"`
}

// Read reads settings.host-containers from the API.
func Read(ctx context.Context, socket string) (map[string]Settings, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	body, err := apiclient.New(socket).Raw(ctx, http.MethodGet, "/?prefix=settings.host-containers", nil)
	if err != nil {
		return nil, fmt.Errorf("read settings.host-containers: %w", err)
	}
	var doc struct {
		Settings struct {
			HostContainers map[string]Settings `json:"host-containers"`
		} `json:"settings"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("read settings.host-containers: %w", err)
	}
	return doc.Settings.HostContainers, nil
}

// Systemd starts and stops units.
type Systemd interface {
	// Start starts a unit; with wait it returns once the start job is done
	// (host-ctr reports ready once the container's process runs) and fails
	// when the job did.
	Start(ctx context.Context, unit string, wait bool) error
	// Stop stops a unit and waits for it.
	Stop(ctx context.Context, unit string) error
}

// Unit is the systemd unit that runs a host container.
func Unit(name string) string { return "host-containers@" + name + ".service" }

// Options configure Apply.
type Options struct {
	Paths   hostctr.Paths
	Systemd Systemd
	// Changed is CHANGED_SETTINGS: the keys whose change runs Apply. Empty
	// means every container (the boot, or settings-applier --all).
	Changed []string
	// Boot queues the starts without waiting: the units are ordered after
	// configured.target, which the boot reaches later.
	Boot bool
}

// Affected reports whether a change of keys touches container name: every
// container when keys is empty or names anything outside
// settings.host-containers, else the containers whose own keys changed.
func Affected(name string, keys []string) bool {
	if len(keys) == 0 {
		return true
	}
	own := "settings.host-containers." + name
	for _, k := range keys {
		if !strings.HasPrefix(k, "settings.host-containers.") && k != "settings.host-containers" {
			return true
		}
		if k == own || strings.HasPrefix(k, own+".") || k == "settings.host-containers" {
			return true
		}
	}
	return false
}

// Apply brings the host containers in line with their settings. Every
// container is handled even when one fails; the error names each failure.
func Apply(ctx context.Context, all map[string]Settings, opts Options) error {
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	slices.Sort(names)
	var errs []error
	for _, name := range names {
		if !Affected(name, opts.Changed) {
			continue
		}
		if err := apply(ctx, name, all[name], opts); err != nil {
			errs = append(errs, fmt.Errorf("host-containers.%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func apply(ctx context.Context, name string, s Settings, opts Options) error {
	c := hostctr.Container{Name: name, Kind: hostctr.Host, Source: s.Source, Superpowered: s.Superpowered, Command: s.Command}
	if s.Enabled {
		if err := c.Validate(); err != nil {
			return err
		}
		if _, err := hostctr.NormalizeRef(s.Source); err != nil {
			return err
		}
	}
	if err := opts.Paths.WriteUserData(c, s.UserData); err != nil {
		return err
	}
	unit := Unit(name)
	if err := opts.Systemd.Stop(ctx, unit); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if !s.Enabled {
		return nil
	}
	// A status left by an earlier run must not be mistaken for this one's.
	if err := os.Remove(opts.Paths.StatusPath(c)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := opts.Systemd.Start(ctx, unit, !opts.Boot); err != nil {
		if st, serr := opts.Paths.ReadStatus(c); serr == nil && st.Error != "" {
			return fmt.Errorf("did not start: %s", st.Error)
		}
		return fmt.Errorf("did not start: %w", err)
	}
	return nil
}
