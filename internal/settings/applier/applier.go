// Package applier owns turning committed settings into node state: from
// changed keys to the services they affect (metadata), rendering those
// services' configuration files, writing each atomically with its mode, and
// running the services' restart commands — reporting every file and service
// that failed, and why, to the caller.
package applier

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gantry-os/gantry/internal/settings/render"
	"github.com/gantry-os/gantry/pkg/model"
)

// Source is where the applier reads settings and wiring: the datastore in
// the apiserver, or the API for the standalone settings-applier.
type Source interface {
	// RenderContext returns {"settings": ..., "os": ...}, decoded JSON.
	RenderContext(ctx context.Context) (render.Context, error)
	// AffectedServices maps each key to its services (inherited metadata).
	AffectedServices(ctx context.Context, keys []string) (map[string][]string, error)
	// Services and ConfigFiles return every service and configuration file.
	Services(ctx context.Context) (map[string]model.Service, error)
	ConfigFiles(ctx context.Context) (map[string]model.ConfigurationFile, error)
}

// Options say where files go and how services restart.
type Options struct {
	// Root prefixes every rendered path ("" or "/" on a node).
	Root string
	// TemplatesDir, when set, holds the templates by base name instead of
	// their template-path (used outside an image).
	TemplatesDir string
	// Runner runs restart commands; nil runs none.
	Runner Runner
}

// Applier renders and restarts.
type Applier struct {
	opts Options
}

// New returns an Applier.
func New(opts Options) *Applier { return &Applier{opts: opts} }

// FilePlan is one file a plan renders.
type FilePlan struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	Mode     string `json:"mode"`
	Changed  bool   `json:"changed"`
	Diff     string `json:"diff,omitempty"`
	Error    string `json:"error,omitempty"`
	content  []byte
	hostPath string
}

// ServicePlan is one service a plan restarts.
type ServicePlan struct {
	Name            string   `json:"name"`
	ChangedSettings []string `json:"changed-settings,omitempty"`
	RestartCommands []string `json:"restart-commands"`
	Files           []string `json:"configuration-files"`
}

// Plan is what applying a set of keys would do.
type Plan struct {
	Keys     []string      `json:"keys"`
	Services []ServicePlan `json:"services"`
	Files    []FilePlan    `json:"files"`
}

// Failed reports whether any file failed to render.
func (p *Plan) Failed() bool {
	for _, f := range p.Files {
		if f.Error != "" {
			return true
		}
	}
	return false
}

// Plan works out which services the keys affect (all of them when keys is
// nil) and renders their files, diffing each against what is on disk.
// Render failures are recorded per file, not returned.
func (a *Applier) Plan(ctx context.Context, src Source, keys []string) (*Plan, error) {
	services, err := src.Services(ctx)
	if err != nil {
		return nil, fmt.Errorf("read services: %w", err)
	}
	files, err := src.ConfigFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("read configuration files: %w", err)
	}
	changedBy := map[string][]string{} // service → keys
	if keys == nil {
		for name := range services {
			changedBy[name] = nil
		}
	} else if len(keys) > 0 {
		affected, err := src.AffectedServices(ctx, keys)
		if err != nil {
			return nil, fmt.Errorf("read affected services: %w", err)
		}
		for _, k := range keys {
			for _, svc := range affected[k] {
				changedBy[svc] = append(changedBy[svc], k)
			}
		}
	}
	plan := &Plan{Keys: keys}
	if plan.Keys == nil {
		plan.Keys = []string{}
	}
	fileNames := map[string]bool{}
	for _, name := range sortedNames(changedBy) {
		svc, ok := services[name]
		if !ok {
			return nil, fmt.Errorf("metadata names service %q, which is not defined", name)
		}
		sp := ServicePlan{Name: name, ChangedSettings: changedBy[name], RestartCommands: svc.RestartCommands}
		if sp.RestartCommands == nil {
			sp.RestartCommands = []string{}
		}
		for _, f := range svc.ConfigurationFiles {
			sp.Files = append(sp.Files, string(f))
			fileNames[string(f)] = true
		}
		if sp.Files == nil {
			sp.Files = []string{}
		}
		plan.Services = append(plan.Services, sp)
	}
	if len(fileNames) == 0 {
		return plan, nil
	}
	rctx, err := src.RenderContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	for _, name := range sortedNames(fileNames) {
		cf, ok := files[name]
		if !ok {
			plan.Files = append(plan.Files, FilePlan{Name: name, Error: "configuration file is not defined"})
			continue
		}
		plan.Files = append(plan.Files, a.planFile(name, cf, rctx)...)
	}
	return plan, nil
}

// planFile renders one configuration file; a file with render-each renders
// once per entry of that settings table.
func (a *Applier) planFile(name string, cf model.ConfigurationFile, rctx render.Context) []FilePlan {
	fp := FilePlan{Name: name, Mode: "0644"}
	if cf.Mode != nil {
		fp.Mode = string(*cf.Mode)
	}
	if cf.Path == nil || cf.TemplatePath == nil {
		fp.Error = "configuration file needs both path and template-path"
		return []FilePlan{fp}
	}
	tmplPath := filepath.Join(a.root(), string(*cf.TemplatePath))
	if a.opts.TemplatesDir != "" {
		tmplPath = filepath.Join(a.opts.TemplatesDir, filepath.Base(string(*cf.TemplatePath)))
	}
	tmpl, err := render.Load(tmplPath)
	if err != nil {
		fp.Path = string(*cf.Path)
		fp.Error = err.Error()
		return []FilePlan{fp}
	}
	var out []FilePlan
	for _, inst := range instances(string(*cf.Path), cf.RenderEach, rctx) {
		f := fp
		f.Path = inst.path
		f.hostPath = filepath.Join(a.root(), inst.path)
		if inst.err != nil {
			f.Error = inst.err.Error()
			out = append(out, f)
			continue
		}
		content, err := render.Execute(tmpl, inst.ctx)
		if err != nil {
			f.Error = err.Error()
			out = append(out, f)
			continue
		}
		f.content = content
		old, err := os.ReadFile(f.hostPath)
		if err != nil && !os.IsNotExist(err) {
			f.Error = fmt.Sprintf("read current file: %v", err)
		}
		f.Changed = string(old) != string(content)
		if f.Changed {
			f.Diff = Diff(f.Path, string(old), string(content))
		}
		out = append(out, f)
	}
	return out
}

type instance struct {
	path string
	ctx  render.Context
	err  error
}

// instances expands a configuration file over a settings table when
// renderEach names one: {name} in the path becomes each entry's name.
func instances(path string, renderEach *model.SingleLineString, rctx render.Context) []instance {
	if renderEach == nil {
		return []instance{{path: path, ctx: rctx}}
	}
	table := render.Get(map[string]any(rctx), string(*renderEach))
	m, ok := table.(map[string]any)
	if table != nil && !ok {
		return []instance{{path: path, err: fmt.Errorf("render-each %s is not a table", *renderEach)}}
	}
	var out []instance
	for _, n := range sortedNames(m) {
		c := render.Context{}
		for k, v := range rctx {
			c[k] = v
		}
		c["name"], c["item"] = n, m[n]
		out = append(out, instance{path: strings.ReplaceAll(path, "{name}", n), ctx: c})
	}
	return out
}

func (a *Applier) root() string {
	if a.opts.Root == "" {
		return "/"
	}
	return a.opts.Root
}

// Report is what Apply did.
type Report struct {
	Plan     *Plan           `json:"plan"`
	Written  []string        `json:"written"`
	Restarts []RestartResult `json:"restarts"`
}

// RestartResult is one restart command's outcome.
type RestartResult struct {
	Service string `json:"service"`
	Command string `json:"command"`
	Error   string `json:"error,omitempty"`
}

// Error lists what failed; the committed settings are not affected.
type Error struct {
	Report   *Report
	Problems []string
}

func (e *Error) Error() string {
	return strings.Join(e.Problems, "\n")
}

// Apply carries a plan out: every file that rendered is written, then the
// services' restart commands run in name order (those of a service whose file
// failed are skipped, so a service never restarts onto a broken
// configuration). One failure does not stop the rest; the returned *Error
// lists every one.
func (a *Applier) Apply(ctx context.Context, plan *Plan) (*Report, error) {
	rep := &Report{Plan: plan, Written: []string{}, Restarts: []RestartResult{}}
	var problems []string
	failedFiles := map[string]bool{}
	reloadSystemd := false
	for _, f := range plan.Files {
		if f.Error != "" {
			failedFiles[f.Name] = true
			problems = append(problems, fmt.Sprintf("file %s (%s): %s", f.Name, f.Path, f.Error))
			continue
		}
		if err := WriteFileAtomic(f.hostPath, f.content, f.Mode); err != nil {
			failedFiles[f.Name] = true
			problems = append(problems, fmt.Sprintf("file %s (%s): %v", f.Name, f.Path, err))
			continue
		}
		rep.Written = append(rep.Written, f.Path)
		if strings.HasPrefix(f.Path, "/etc/systemd/") {
			reloadSystemd = true
		}
	}
	if reloadSystemd && a.opts.Runner != nil {
		if err := a.opts.Runner.Run(ctx, "/usr/bin/systemctl daemon-reload", nil); err != nil {
			problems = append(problems, fmt.Sprintf("systemd daemon-reload: %v", err))
		}
	}
	for _, svc := range plan.Services {
		skip := ""
		for _, f := range svc.Files {
			if failedFiles[f] {
				skip = f
			}
		}
		if skip != "" {
			if len(svc.RestartCommands) > 0 {
				problems = append(problems, fmt.Sprintf("service %s: not restarted because its file %s failed", svc.Name, skip))
			}
			continue
		}
		if a.opts.Runner == nil {
			continue
		}
		for _, cmd := range svc.RestartCommands {
			res := RestartResult{Service: svc.Name, Command: cmd}
			if err := a.opts.Runner.Run(ctx, cmd, svc.ChangedSettings); err != nil {
				res.Error = err.Error()
				problems = append(problems, fmt.Sprintf("service %s: restart command %q: %v", svc.Name, cmd, err))
			}
			rep.Restarts = append(rep.Restarts, res)
			if res.Error != "" {
				break // the service's later commands assume the earlier ones worked
			}
		}
	}
	if len(problems) > 0 {
		return rep, &Error{Report: rep, Problems: problems}
	}
	return rep, nil
}

// DecodeContext turns a JSON document into a render context with exact numbers.
func DecodeContext(b []byte) (render.Context, error) {
	v, err := model.DecodeJSON(b)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("render context is not an object")
	}
	return render.Context(m), nil
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
