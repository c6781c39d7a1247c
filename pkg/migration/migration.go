// Package migration owns what a settings migration binary is made of: the
// data a migration sees (Data), the Migration interface, the runner that
// reads a source datastore and writes a new, migrated target datastore
// (Migrate, and Run, which is the whole main of a migration binary), and the
// common helpers (AddSettings, RemoveSettings, ReplaceString, ReplaceList,
// ReplaceTemplate, AddMetadata, RemoveMetadata, ReplaceMetadata, AddPrefixes,
// RemovePrefixes, NoOp, Sequence).
//
// A migration never edits a datastore in place. It reads the source version
// directory read-only and writes a fresh datastore into the target version
// directory; the migrator chains such steps and flips the `current` link
// only after the last one succeeded.
package migration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/pkg/durable"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/osrelease"
)

// Data is what a migration transforms: the data keys of one section of the
// datastore (live, or one pending transaction) and, for live, the metadata.
//
// Data maps a canonical data key name (settings.kernel.sysctl."vm.max_map_count")
// to its JSON value. Metadata maps a data key name to metadata name to JSON
// value; it holds the metadata exactly as stored, without inheritance. For a
// pending transaction Metadata is empty, and anything a migration puts there
// is ignored, because metadata lives only in live data.
//
// While a migration runs, Data also holds the os.* keys of the running
// release (OSVariantID, OSArch, OSVersionID) so that it can branch on the
// variant or architecture. Those keys are removed again before the result is
// written; they never reach the target datastore.
type Data struct {
	Data     map[string]json.RawMessage
	Metadata map[string]map[string]json.RawMessage
}

// The os.* keys injected into Data from the running release.
const (
	OSVariantID = "os.variant_id"
	OSArch      = "os.arch"
	OSVersionID = "os.version_id"
)

// injectedKeys lists the os.* keys in a fixed order.
func injectedKeys() []string { return []string{OSVariantID, OSArch, OSVersionID} }

// String returns the value of key when it is a JSON string.
func (d *Data) String(key string) (string, bool) {
	raw, ok := d.Data[key]
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// Migration is one settings migration. Forward moves data from the old
// version's shape to the new one's; Backward undoes it, for a downgrade.
// Both are called once for live data and once for every pending transaction,
// and pending transactions may hold any subset of keys, so a migration must
// never assume that a key exists.
type Migration interface {
	Forward(*Data) error
	Backward(*Data) error
}

// Direction says which way a migration runs.
type Direction int

const (
	// Forward migrates to a newer version (--forward).
	Forward Direction = iota + 1
	// Backward migrates to an older version (--backward).
	Backward
)

func (d Direction) String() string {
	switch d {
	case Forward:
		return "forward"
	case Backward:
		return "backward"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Flag is the command-line flag a migration binary takes for d.
func (d Direction) Flag() string { return "--" + d.String() }

// Apply runs m in direction d.
func (d Direction) Apply(m Migration, data *Data) error {
	switch d {
	case Forward:
		return m.Forward(data)
	case Backward:
		return m.Backward(data)
	}
	return fmt.Errorf("invalid migration direction %d", int(d))
}

// Options say what Migrate reads, writes and reports.
type Options struct {
	// Name names the migration in messages (a binary's file name).
	Name      string
	Direction Direction
	// Source is the version directory of the datastore to read; it is
	// opened read-only and never changed.
	Source string
	// Target is the version directory to write a new datastore into; it
	// must not already hold one.
	Target string
	// Release supplies the injected os.* keys; empty fields are not injected.
	Release osrelease.Release
	// Logger receives a summary of what changed (nil: discard).
	Logger *slog.Logger
}

// SectionChange counts what a migration changed in one section.
type SectionChange struct {
	Section                 string // "live" or "pending <tx>"
	Added, Changed, Removed int    // data keys
	// MetadataChanged counts metadata entries added, changed or removed.
	MetadataChanged int
	// Discarded counts metadata entries a migration set on pending data,
	// which are not written (metadata is live only).
	Discarded int
}

// stored is everything read from one datastore.
type stored struct {
	live     map[string]json.RawMessage
	metadata map[string]map[string]json.RawMessage
	pending  map[string]map[string]json.RawMessage
}

// Migrate reads opts.Source, applies m in opts.Direction to live data (with
// metadata) and then to every pending transaction (data only), and writes the
// result as a new datastore in opts.Target. Nothing is written unless the
// migration succeeded on every section; if writing fails, the partial
// target database is removed.
//
// Every error names the migration (opts.Name), the direction and, for a
// failure of the migration itself, the section it failed on.
func Migrate(ctx context.Context, m Migration, opts Options) ([]SectionChange, error) {
	changes, err := migrate(ctx, m, opts)
	if err != nil {
		name := opts.Name
		if name == "" {
			name = "migration"
		}
		return nil, fmt.Errorf("%s %s: %w", name, opts.Direction, err)
	}
	return changes, nil
}

func migrate(ctx context.Context, m Migration, opts Options) ([]SectionChange, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Direction != Forward && opts.Direction != Backward {
		return nil, fmt.Errorf("invalid migration direction %d", int(opts.Direction))
	}
	if err := checkDirs(opts.Source, opts.Target); err != nil {
		return nil, err
	}
	in, err := readAll(ctx, opts.Source)
	if err != nil {
		return nil, err
	}

	out := stored{pending: map[string]map[string]json.RawMessage{}}
	var changes []SectionChange
	step := func(section string, data map[string]json.RawMessage, md map[string]map[string]json.RawMessage) (*Data, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d := &Data{Data: maps.Clone(data), Metadata: cloneMetadata(md)}
		restore := inject(d, opts.Release)
		if err := opts.Direction.Apply(m, d); err != nil {
			return nil, fmt.Errorf("on %s: %w", section, err)
		}
		if d.Data == nil {
			d.Data = map[string]json.RawMessage{}
		}
		restore(d)
		return d, nil
	}

	d, err := step("live data", in.live, in.metadata)
	if err != nil {
		return nil, err
	}
	out.live, out.metadata = d.Data, d.Metadata
	changes = append(changes, diff("live", in.live, d.Data, in.metadata, d.Metadata))
	for _, tx := range slices.Sorted(maps.Keys(in.pending)) {
		d, err := step("pending transaction "+tx, in.pending[tx], nil)
		if err != nil {
			return nil, err
		}
		out.pending[tx] = d.Data
		c := diff("pending "+tx, in.pending[tx], d.Data, nil, nil)
		c.Discarded = countMetadata(d.Metadata)
		changes = append(changes, c)
	}

	if err := writeAll(ctx, opts.Target, out); err != nil {
		return nil, fmt.Errorf("write %s: %w", opts.Target, err)
	}
	for _, c := range changes {
		level := slog.LevelInfo
		if c.Added+c.Changed+c.Removed+c.MetadataChanged == 0 {
			level = slog.LevelDebug
		}
		log.Log(ctx, level, "migrated", "migration", opts.Name, "direction", opts.Direction.String(), "section", c.Section,
			"added", c.Added, "changed", c.Changed, "removed", c.Removed, "metadata_changed", c.MetadataChanged)
		if c.Discarded > 0 {
			log.Warn("ignored metadata set on pending data (metadata is live only)", "migration", opts.Name,
				"section", c.Section, "entries", c.Discarded)
		}
	}
	return changes, nil
}

// checkDirs refuses a missing source, a target that already holds a
// datastore, and a target that is the source.
func checkDirs(source, target string) error {
	if source == "" || target == "" {
		return errors.New("both a source and a target datastore directory are needed")
	}
	src, err := filepath.EvalSymlinks(source)
	if err != nil {
		return fmt.Errorf("source datastore: %w", err)
	}
	if _, err := os.Stat(filepath.Join(src, datastore.DBFile)); err != nil {
		return fmt.Errorf("source datastore: %w", err)
	}
	if _, err := os.Lstat(filepath.Join(target, datastore.DBFile)); err == nil {
		return fmt.Errorf("target %s already holds a datastore; a migration only writes a new one", target)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("target datastore: %w", err)
	}
	if dst, err := filepath.EvalSymlinks(target); err == nil && dst == src {
		return fmt.Errorf("target %s is the source datastore", target)
	}
	return nil
}

func readAll(ctx context.Context, dir string) (stored, error) {
	s, err := datastore.Open(ctx, dir, datastore.OpenOptions{ReadOnly: true})
	if err != nil {
		return stored{}, fmt.Errorf("open source datastore: %w", err)
	}
	defer s.Close()
	in := stored{metadata: map[string]map[string]json.RawMessage{}, pending: map[string]map[string]json.RawMessage{}}
	if in.live, err = s.GetPrefix(ctx, datastore.Live, ""); err != nil {
		return stored{}, fmt.Errorf("read live data of %s: %w", dir, err)
	}
	md, err := s.AllMetadata(ctx)
	if err != nil {
		return stored{}, fmt.Errorf("read metadata of %s: %w", dir, err)
	}
	for _, e := range md {
		k := e.Key.Name()
		if in.metadata[k] == nil {
			in.metadata[k] = map[string]json.RawMessage{}
		}
		in.metadata[k][e.Name.Name()] = e.Value
	}
	txs, err := s.Transactions(ctx)
	if err != nil {
		return stored{}, fmt.Errorf("list pending transactions of %s: %w", dir, err)
	}
	for _, tx := range txs {
		if in.pending[tx], err = s.GetPrefix(ctx, datastore.Pending(tx), ""); err != nil {
			return stored{}, fmt.Errorf("read pending transaction %s of %s: %w", tx, dir, err)
		}
	}
	return in, nil
}

// writeAll creates the datastore in dir and writes out into it. On failure
// it removes the database file it created.
func writeAll(ctx context.Context, dir string, out stored) (err error) {
	live, err := toKeys(out.live)
	if err != nil {
		return fmt.Errorf("live data: %w", err)
	}
	md, err := toMetadata(out.metadata)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	pending := map[string]map[datastore.Key]json.RawMessage{}
	for tx, data := range out.pending {
		if pending[tx], err = toKeys(data); err != nil {
			return fmt.Errorf("pending transaction %s: %w", tx, err)
		}
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	s, err := datastore.Open(ctx, dir, datastore.OpenOptions{Create: true})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close: %w", cerr)
		}
		if err != nil {
			os.Remove(filepath.Join(dir, datastore.DBFile))
		}
	}()
	if err := s.Set(ctx, datastore.Live, live); err != nil {
		return fmt.Errorf("live data: %w", err)
	}
	if err := s.SetMetadata(ctx, md); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	for _, tx := range slices.Sorted(maps.Keys(pending)) {
		if err := s.Set(ctx, datastore.Pending(tx), pending[tx]); err != nil {
			return fmt.Errorf("pending transaction %s: %w", tx, err)
		}
	}
	return durable.SyncDir(dir)
}

func toKeys(data map[string]json.RawMessage) (map[datastore.Key]json.RawMessage, error) {
	out := make(map[datastore.Key]json.RawMessage, len(data))
	for name, v := range data {
		k, err := datastore.ParseKey(datastore.DataKey, name)
		if err != nil {
			return nil, err
		}
		if !json.Valid(v) {
			return nil, fmt.Errorf("value of %s is not valid JSON: %q", name, v)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("key %s is set twice (under two spellings)", k)
		}
		out[k] = v
	}
	return out, nil
}

func toMetadata(md map[string]map[string]json.RawMessage) ([]datastore.Metadata, error) {
	var out []datastore.Metadata
	seen := map[[2]datastore.Key]bool{}
	for _, name := range slices.Sorted(maps.Keys(md)) {
		k, err := datastore.ParseKey(datastore.DataKey, name)
		if err != nil {
			return nil, err
		}
		for _, mname := range slices.Sorted(maps.Keys(md[name])) {
			mk, err := datastore.ParseKey(datastore.MetaKey, mname)
			if err != nil {
				return nil, fmt.Errorf("metadata of %s: %w", name, err)
			}
			v := md[name][mname]
			if !json.Valid(v) {
				return nil, fmt.Errorf("metadata %s of %s is not valid JSON: %q", mname, name, v)
			}
			if seen[[2]datastore.Key{k, mk}] {
				return nil, fmt.Errorf("metadata %s of %s is set twice (under two spellings)", mk, k)
			}
			seen[[2]datastore.Key{k, mk}] = true
			out = append(out, datastore.Metadata{Key: k, Name: mk, Value: v})
		}
	}
	return out, nil
}

// inject adds the release's os.* keys to d and returns the function that
// takes them out again, putting back any value the section itself stored
// under those names.
func inject(d *Data, rel osrelease.Release) func(*Data) {
	saved := map[string]json.RawMessage{}
	for _, k := range injectedKeys() {
		if v, ok := d.Data[k]; ok {
			saved[k] = v
		}
	}
	vals := map[string]string{OSVariantID: rel.VariantID, OSArch: rel.Arch, OSVersionID: rel.VersionID}
	for _, k := range injectedKeys() {
		if vals[k] != "" {
			b, _ := json.Marshal(vals[k])
			d.Data[k] = b
		}
	}
	return func(d *Data) {
		for _, k := range injectedKeys() {
			delete(d.Data, k)
			if v, ok := saved[k]; ok {
				d.Data[k] = v
			}
		}
	}
}

func cloneMetadata(md map[string]map[string]json.RawMessage) map[string]map[string]json.RawMessage {
	out := make(map[string]map[string]json.RawMessage, len(md))
	for k, v := range md {
		out[k] = maps.Clone(v)
	}
	return out
}

func countMetadata(md map[string]map[string]json.RawMessage) int {
	n := 0
	for _, m := range md {
		n += len(m)
	}
	return n
}

func diff(section string, before, after map[string]json.RawMessage, mdBefore, mdAfter map[string]map[string]json.RawMessage) SectionChange {
	c := SectionChange{Section: section}
	for k, v := range after {
		if old, ok := before[k]; !ok {
			c.Added++
		} else if string(old) != string(v) {
			c.Changed++
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			c.Removed++
		}
	}
	flat := func(md map[string]map[string]json.RawMessage) map[[2]string]string {
		out := map[[2]string]string{}
		for k, m := range md {
			for n, v := range m {
				out[[2]string{k, n}] = string(v)
			}
		}
		return out
	}
	fb, fa := flat(mdBefore), flat(mdAfter)
	for k, v := range fa {
		if old, ok := fb[k]; !ok || old != v {
			c.MetadataChanged++
		}
	}
	for k := range fb {
		if _, ok := fa[k]; !ok {
			c.MetadataChanged++
		}
	}
	return c
}
