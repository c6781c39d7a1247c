// Package storewolf creates a node's datastore and fills it with the
// variant's defaults: settings go into the launch transaction, metadata,
// services and configuration files straight to live, and nothing that is
// already there is ever overwritten.
package storewolf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/pkg/apiclient"
	"github.com/gantry-os/gantry/pkg/durable"
	"github.com/gantry-os/gantry/pkg/version"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/model"
)

// LoadDefaults reads every *.toml file of dir in name order and merges them:
// later files replace scalars and arrays and merge tables; a type mismatch is
// an error naming both files.
func LoadDefaults(dir string) (map[string]any, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.toml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no defaults (*.toml) in %s", dir)
	}
	sort.Strings(files)
	merged := map[string]any{}
	origin := map[string]string{}
	for _, f := range files {
		var doc map[string]any
		if _, err := toml.DecodeFile(f, &doc); err != nil {
			return nil, fmt.Errorf("defaults file %s: %w", f, err)
		}
		if err := mergeTables(merged, doc, nil, f, origin); err != nil {
			return nil, err
		}
	}
	return merged, nil
}

func mergeTables(dst, src map[string]any, path []string, file string, origin map[string]string) error {
	for k, sv := range src {
		p := append(append([]string(nil), path...), k)
		name := strings.Join(p, ".")
		dv, exists := dst[k]
		st, srcIsTable := sv.(map[string]any)
		if !exists {
			dst[k] = sv
			origin[name] = file
			continue
		}
		dt, dstIsTable := dv.(map[string]any)
		switch {
		case srcIsTable && dstIsTable:
			if err := mergeTables(dt, st, p, file, origin); err != nil {
				return err
			}
		case srcIsTable != dstIsTable:
			return fmt.Errorf("defaults: %s is a table in one file and a value in the other (%s, %s)", name, originOf(origin, p), file)
		default:
			dst[k] = sv
			origin[name] = file
		}
	}
	return nil
}

func originOf(origin map[string]string, p []string) string {
	for i := len(p); i > 0; i-- {
		if f, ok := origin[strings.Join(p[:i], ".")]; ok {
			return f
		}
	}
	return "an earlier file"
}

// Options say where the datastore lives and what goes in it.
type Options struct {
	Base     string // datastore base directory (holds the `current` link)
	Version  version.Semver
	Defaults map[string]any
	Model    *model.Model
}

// Result reports what Populate wrote.
type Result struct {
	Created      bool   // a new datastore was made
	Dir          string // the datastore directory
	LaunchKeys   int    // settings written to the launch transaction
	LiveKeys     int    // services and configuration-files keys written to live
	MetadataKeys int    // metadata entries written
}

// Populate creates the datastore if missing, drops every pending
// transaction, and adds the defaults that are not there yet. The whole of
// the defaults is validated before anything is written.
func Populate(ctx context.Context, opts Options) (Result, error) {
	settings, metadata, sections, err := splitDefaults(opts.Model, opts.Defaults)
	if err != nil {
		return Result{}, err
	}
	var res Result
	current := filepath.Join(opts.Base, datastore.CurrentLink)
	_, statErr := os.Stat(filepath.Join(current, datastore.DBFile))
	var store *datastore.Store
	switch {
	case statErr == nil:
		res.Dir, _ = filepath.EvalSymlinks(current)
		store, err = datastore.Open(ctx, current, datastore.OpenOptions{})
	case errors.Is(statErr, os.ErrNotExist):
		res.Created = true
		res.Dir, err = datastore.NewVersionDir(opts.Base, opts.Version)
		if err == nil {
			// Nothing can reach the new directory until LinkVersion, so
			// the commits below need not each be synced: one sync before
			// the link does (a sync costs tens of milliseconds on a VM's
			// disk, and this is on the boot's way to the API).
			store, err = datastore.Open(ctx, res.Dir, datastore.OpenOptions{Create: true, Unsynced: true})
		}
	default:
		err = statErr
	}
	if err != nil {
		return res, err
	}
	defer store.Close()

	if err := store.DeleteAllPending(ctx); err != nil {
		return res, fmt.Errorf("drop pending transactions: %w", err)
	}
	live, err := store.GetPrefix(ctx, datastore.Live, "")
	if err != nil {
		return res, err
	}
	missing := func(pairs map[datastore.Key]json.RawMessage) map[datastore.Key]json.RawMessage {
		out := map[datastore.Key]json.RawMessage{}
		for k, v := range pairs {
			if _, ok := live[k.Name()]; !ok {
				out[k] = v
			}
		}
		return out
	}
	launch := missing(settings)
	if len(launch) > 0 {
		if err := store.Set(ctx, datastore.Pending(apiclient.LaunchTx), launch); err != nil {
			return res, fmt.Errorf("write default settings: %w", err)
		}
	}
	toLive := missing(sections)
	if len(toLive) > 0 {
		if err := store.Set(ctx, datastore.Live, toLive); err != nil {
			return res, fmt.Errorf("write services and configuration files: %w", err)
		}
	}
	existing, err := store.AllMetadata(ctx)
	if err != nil {
		return res, err
	}
	have := map[[2]string]bool{}
	for _, m := range existing {
		have[[2]string{m.Key.Name(), m.Name.Name()}] = true
	}
	var newMD []datastore.Metadata
	for _, m := range metadata {
		if !have[[2]string{m.Key.Name(), m.Name.Name()}] {
			newMD = append(newMD, m)
		}
	}
	if len(newMD) > 0 {
		if err := store.SetMetadata(ctx, newMD); err != nil {
			return res, fmt.Errorf("write metadata: %w", err)
		}
	}
	if res.Created {
		if err := store.Sync(); err != nil {
			return res, err
		}
		if err := durable.SyncDir(res.Dir); err != nil {
			return res, err
		}
		if err := datastore.LinkVersion(opts.Base, opts.Version, res.Dir); err != nil {
			return res, err
		}
	}
	res.LaunchKeys, res.LiveKeys, res.MetadataKeys = len(launch), len(toLive), len(newMD)
	return res, nil
}

// splitDefaults validates the merged defaults and splits them into settings
// keys, metadata entries and services/configuration-files keys.
func splitDefaults(m *model.Model, defaults map[string]any) (settings map[datastore.Key]json.RawMessage, md []datastore.Metadata, sections map[datastore.Key]json.RawMessage, err error) {
	doc, err := model.NormalizeJSON(defaults)
	if err != nil {
		return nil, nil, nil, err
	}
	top := doc.(map[string]any)
	sections = map[datastore.Key]json.RawMessage{}
	for _, name := range sortedKeys(top) {
		v := top[name]
		switch name {
		case "settings":
			settings, err = m.SettingsDocPairs(v)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("defaults: %w", err)
			}
		case "metadata":
			md, err = metadataEntries(nil, v)
			if err != nil {
				return nil, nil, nil, err
			}
		case "services", "configuration-files":
			if err := model.CheckSection(name, v); err != nil {
				return nil, nil, nil, fmt.Errorf("defaults: %w", err)
			}
			pairs, err := datastore.Flatten([]string{name}, v)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("defaults: %w", err)
			}
			for k, val := range pairs {
				sections[k] = val
			}
		default:
			return nil, nil, nil, fmt.Errorf("defaults: unknown top-level table [%s] (allowed: settings, metadata, services, configuration-files)", name)
		}
	}
	return settings, md, sections, nil
}

// metadataEntries walks [metadata.<data key>] tables: a string or array leaf
// is metadata named by its own key, on the data key of its table path.
func metadataEntries(path []string, v any) ([]datastore.Metadata, error) {
	t, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("defaults: metadata.%s must be a table", strings.Join(path, "."))
	}
	var out []datastore.Metadata
	for _, name := range sortedKeys(t) {
		child := t[name]
		if sub, ok := child.(map[string]any); ok {
			more, err := metadataEntries(append(append([]string(nil), path...), name), sub)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
			continue
		}
		where := "metadata." + strings.Join(append(append([]string(nil), path...), name), ".")
		switch child.(type) {
		case string, []any:
		default:
			return nil, fmt.Errorf("defaults: %s: metadata must be a string or a list", where)
		}
		if len(path) == 0 {
			return nil, fmt.Errorf("defaults: %s: metadata needs a data key (a table path) above it", where)
		}
		dk, err := datastore.KeyFromSegments(datastore.DataKey, path)
		if err != nil {
			return nil, fmt.Errorf("defaults: %s: %w", where, err)
		}
		mk, err := datastore.KeyFromSegments(datastore.MetaKey, []string{name})
		if err != nil {
			return nil, fmt.Errorf("defaults: %s: %w", where, err)
		}
		raw, _ := json.Marshal(child)
		out = append(out, datastore.Metadata{Key: dk, Name: mk, Value: raw})
	}
	return out, nil
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
