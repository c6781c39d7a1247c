// Package bootstrap runs what settings.bootstrap-commands and
// settings.bootstrap-containers ask for at boot, before the node's
// orchestrator starts:
//
//   - bootstrap commands: apiclient invocations, in name order, before
//     preconfigured.target (the settings are not final yet, so what they set
//     is in the first configuration);
//   - bootstrap containers: host-ctr containers of the bootstrap kind, in
//     name order, before configured.target (containerd and the orchestrator
//     order after it).
//
// An entry in mode "once" is set to "off" through the API after it
// succeeded; "always" runs at every boot; "off" never. A failed essential
// entry makes the run fail, and with it its target, so that the boot stops
// short of what needs the node configured; the failure is printed on the
// console and kept in the status file that the API serves.
package bootstrap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gantry-os/gantry/pkg/apiclient"
)

// Entry is one bootstrap command or container, as the API returns it.
type Entry struct {
	Mode      string     `json:"mode"`
	Essential bool       `json:"essential"`
	Source    string     `json:"source"`
	UserData  string     `json:"user-data"`
	Commands  [][]string `json:"commands"`
}

// Group is the settings group an entry belongs to.
type Group string

// The two groups.
const (
	Commands   Group = "bootstrap-commands"
	Containers Group = "bootstrap-containers"
)

// Read reads a group's entries from the API.
func Read(ctx context.Context, socket string, g Group) (map[string]Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	body, err := apiclient.New(socket).Raw(ctx, http.MethodGet, "/?prefix=settings."+string(g), nil)
	if err != nil {
		return nil, fmt.Errorf("read settings.%s: %w", g, err)
	}
	var doc struct {
		Settings map[string]map[string]Entry `json:"settings"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("read settings.%s: %w", g, err)
	}
	return doc.Settings[string(g)], nil
}

// Result is one entry's outcome.
type Result struct {
	Name      string    `json:"name"`
	Mode      string    `json:"mode"`
	Essential bool      `json:"essential"`
	State     string    `json:"state"` // skipped (mode off), succeeded, failed
	Error     string    `json:"error,omitempty"`
	Start     time.Time `json:"start,omitzero"`
	Seconds   float64   `json:"seconds,omitempty"`
}

// Report is a group's run at this boot, the status file's content.
type Report struct {
	Group   Group    `json:"group"`
	Results []Result `json:"results"`
	// Blocked names the essential entry that failed: the boot stopped
	// short of the group's target.
	Blocked string `json:"blocked,omitempty"`
}

// Runner runs one entry; a non-nil error is the entry's failure.
type Runner func(ctx context.Context, name string, e Entry) error

// Options configure Run.
type Options struct {
	Group Group
	Run   Runner
	// SetMode sets an entry's mode through the API ("once" → "off").
	SetMode func(ctx context.Context, name, mode string) error
	// Console receives one line per entry and the verdict.
	Console io.Writer
	// StatusPath is where the report is written (for the API).
	StatusPath string
}

// Run runs the enabled entries in name order. It returns the report and,
// when an essential entry failed, an error naming it; a non-essential
// failure is reported and the run goes on. Entries after a failed
// essential one do not run.
func Run(ctx context.Context, entries map[string]Entry, o Options) (*Report, error) {
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	slices.Sort(names)
	rep := &Report{Group: o.Group, Results: []Result{}}
	var blocked error
	for _, name := range names {
		e := entries[name]
		mode := e.Mode
		if mode == "" {
			mode = "off"
		}
		r := Result{Name: name, Mode: mode, Essential: e.Essential}
		if mode == "off" || blocked != nil {
			r.State = "skipped"
			if blocked != nil {
				r.Error = "not run: " + rep.Blocked + " failed"
			}
			rep.Results = append(rep.Results, r)
			continue
		}
		r.Start = time.Now().UTC()
		err := o.Run(ctx, name, e)
		r.Seconds = time.Since(r.Start).Round(time.Millisecond).Seconds()
		if err == nil && mode == "once" {
			if serr := o.SetMode(ctx, name, "off"); serr != nil {
				err = fmt.Errorf("succeeded, but mode once could not be set to off: %w", serr)
			}
		}
		what := fmt.Sprintf("%s %s (mode %s", o.Group, name, mode)
		if e.Essential {
			what += ", essential"
		}
		what += ")"
		if err != nil {
			r.State, r.Error = "failed", err.Error()
			fmt.Fprintf(o.Console, "%s: %s FAILED: %v\n", o.Group, what, err)
			if e.Essential {
				rep.Blocked = name
				blocked = fmt.Errorf("essential %s %s failed: %w", o.Group, name, err)
			}
		} else {
			r.State = "succeeded"
			fmt.Fprintf(o.Console, "%s: %s succeeded in %.1fs\n", o.Group, what, r.Seconds)
		}
		rep.Results = append(rep.Results, r)
	}
	if blocked != nil {
		fmt.Fprintf(o.Console, "%s: the boot stops here: %v\n", o.Group, blocked)
	}
	if o.StatusPath != "" {
		if err := writeReport(o.StatusPath, rep); err != nil {
			return rep, errors.Join(blocked, err)
		}
	}
	return rep, blocked
}

func writeReport(path string, rep *Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	return nil
}

// ReadReport reads a status file; a missing one is (nil, nil): the group
// has not run at this boot.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("status %s: %w", path, err)
	}
	return &rep, nil
}

// CheckCommand refuses a bootstrap command that is not apiclient (the
// model refuses them too; an older datastore may hold one).
func CheckCommand(args []string) error {
	if len(args) == 0 || args[0] != "apiclient" {
		return fmt.Errorf("%q is not an apiclient command", strings.Join(args, " "))
	}
	return nil
}

// StatusPath is a group's report file under dir (/run/gantry on the node).
func StatusPath(dir string, g Group) string { return filepath.Join(dir, string(g)+".json") }
