package applier

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/gantry-os/gantry/internal/procgroup"
)

// Runner runs a service's restart command. changed lists the settings that
// caused it (nil at boot), passed as CHANGED_SETTINGS.
type Runner interface {
	Run(ctx context.Context, command string, changed []string) error
}

// ExecRunner runs restart commands as programs: split on whitespace, no
// shell, as Bottlerocket does.
type ExecRunner struct {
	// Root, when not "/", prefixes absolute program paths: a development
	// tree holds its own restart programs, and a restart command never
	// reaches the host's programs by accident. It is passed as GANTRY_ROOT.
	Root    string
	Timeout time.Duration
}

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, command string, changed []string) error {
	args := strings.Fields(command)
	if len(args) == 0 {
		return fmt.Errorf("empty restart command")
	}
	prog := args[0]
	if r.Root != "" && r.Root != "/" && filepath.IsAbs(prog) {
		prog = filepath.Join(r.Root, prog)
		if _, err := os.Stat(prog); err != nil {
			return fmt.Errorf("restart program %s is not under the root %s", args[0], r.Root)
		}
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args[1:]...)
	procgroup.Configure(cmd)
	cmd.Env = append(os.Environ(), "CHANGED_SETTINGS="+strings.Join(changed, " "))
	if r.Root != "" {
		cmd.Env = append(cmd.Env, "GANTRY_ROOT="+r.Root)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + "…"
		}
		if msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

// SystemdRunner carries out `systemctl VERB UNIT...` restart commands over
// D-Bus, waiting for each job and reporting its result (Bottlerocket forks
// systemctl and never learns whether a try-restart did anything); any other
// command goes to Fallback.
type SystemdRunner struct {
	Fallback Runner
}

// Run implements Runner.
func (r SystemdRunner) Run(ctx context.Context, command string, changed []string) error {
	verb, units, ok := parseSystemctl(command)
	if !ok {
		if r.Fallback == nil {
			return fmt.Errorf("no runner for %q", command)
		}
		return r.Fallback.Run(ctx, command, changed)
	}
	conn, err := sddbus.NewWithContext(ctx)
	if err != nil {
		return fmt.Errorf("connect to systemd: %w", err)
	}
	defer conn.Close()
	if verb == "daemon-reload" {
		return conn.ReloadContext(ctx)
	}
	for _, unit := range units {
		ch := make(chan string, 1)
		var err error
		switch verb {
		case "restart":
			_, err = conn.RestartUnitContext(ctx, unit, "replace", ch)
		case "try-restart":
			_, err = conn.TryRestartUnitContext(ctx, unit, "replace", ch)
		case "reload-or-restart":
			_, err = conn.ReloadOrRestartUnitContext(ctx, unit, "replace", ch)
		case "try-reload-or-restart":
			_, err = conn.ReloadOrTryRestartUnitContext(ctx, unit, "replace", ch)
		case "start":
			_, err = conn.StartUnitContext(ctx, unit, "replace", ch)
		case "stop":
			_, err = conn.StopUnitContext(ctx, unit, "replace", ch)
		case "reload":
			_, err = conn.ReloadUnitContext(ctx, unit, "replace", ch)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", verb, unit, err)
		}
		select {
		case res := <-ch:
			if res != "done" {
				return fmt.Errorf("%s %s: job %s", verb, unit, res)
			}
		case <-ctx.Done():
			return fmt.Errorf("%s %s: %w", verb, unit, ctx.Err())
		}
	}
	return nil
}

// parseSystemctl recognizes `[/usr]/bin/systemctl [--no-block] VERB UNIT...`.
func parseSystemctl(command string) (verb string, units []string, ok bool) {
	args := strings.Fields(command)
	if len(args) < 2 || filepath.Base(args[0]) != "systemctl" {
		return "", nil, false
	}
	var rest []string
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-") {
			return "", nil, false // options we do not model go to systemctl itself
		}
		rest = append(rest, a)
	}
	if len(rest) == 0 {
		return "", nil, false
	}
	verb, units = rest[0], rest[1:]
	switch {
	case verb == "daemon-reload" && len(units) == 0:
		return verb, nil, true
	case len(units) > 0 && strings.Contains(" restart try-restart reload-or-restart try-reload-or-restart start stop reload ", " "+verb+" "):
		return verb, units, true
	}
	return "", nil, false
}

// SystemdAvailable reports whether systemd is the running init.
func SystemdAvailable() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}
