package migration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/gantry-os/gantry/pkg/datastore"
)

// The helpers below cover the usual migrations. Each works on any section:
// a key that is absent is simply left absent, so they are safe on partial
// pending transactions. Key names given to a helper are parsed and
// canonicalized; a malformed one makes both directions fail.

// AddSettings is the migration for settings that the new version adds.
// Forward does nothing: storewolf fills in the new defaults. Backward removes
// each listed key and every key below it (whole segments: settings.a covers
// settings.a.b but not settings.ab), with their metadata, so that the older
// version never sees keys its model does not know.
type AddSettings []string

// Forward implements Migration.
func (a AddSettings) Forward(*Data) error {
	_, err := dataKeys("AddSettings", a)
	return err
}

// Backward implements Migration.
func (a AddSettings) Backward(d *Data) error { return removeSettings(d, "AddSettings", a) }

// RemoveSettings is the migration for settings that the new version drops.
// Forward removes each listed key, every key below it and their metadata;
// Backward does nothing, because the older version's storewolf fills its
// defaults back in.
type RemoveSettings []string

// Forward implements Migration.
func (r RemoveSettings) Forward(d *Data) error { return removeSettings(d, "RemoveSettings", r) }

// Backward implements Migration.
func (r RemoveSettings) Backward(*Data) error {
	_, err := dataKeys("RemoveSettings", r)
	return err
}

// ReplaceString changes a string setting from Old to New (forward) and back
// (backward), only where it holds exactly the value being replaced: a value
// the user changed is left alone, and so is a value of another type.
type ReplaceString struct {
	Setting  string
	Old, New string
}

// Forward implements Migration.
func (r ReplaceString) Forward(d *Data) error { return r.replace(d, r.Old, r.New) }

// Backward implements Migration.
func (r ReplaceString) Backward(d *Data) error { return r.replace(d, r.New, r.Old) }

func (r ReplaceString) replace(d *Data, from, to string) error {
	return replaceValue(d, "ReplaceString", r.Setting, jsonOf(from), jsonOf(to))
}

// ReplaceList changes a list setting (a JSON array of strings, stored whole)
// from Old to New and back, only where it holds exactly the list being
// replaced, in the same order.
type ReplaceList struct {
	Setting  string
	Old, New []string
}

// Forward implements Migration.
func (r ReplaceList) Forward(d *Data) error { return r.replace(d, r.Old, r.New) }

// Backward implements Migration.
func (r ReplaceList) Backward(d *Data) error { return r.replace(d, r.New, r.Old) }

func (r ReplaceList) replace(d *Data, from, to []string) error {
	if from == nil {
		from = []string{}
	}
	if to == nil {
		to = []string{}
	}
	return replaceValue(d, "ReplaceList", r.Setting, jsonOf(from), jsonOf(to))
}

// ReplaceTemplate changes the template a configuration file is rendered from:
// the data key configuration-files.<File>.template-path, from Old to New and
// back, only where it holds exactly the path being replaced.
type ReplaceTemplate struct {
	File     string // the configuration file's name, e.g. motd
	Old, New string // template paths
}

// Forward implements Migration.
func (r ReplaceTemplate) Forward(d *Data) error { return r.replace(d, r.Old, r.New) }

// Backward implements Migration.
func (r ReplaceTemplate) Backward(d *Data) error { return r.replace(d, r.New, r.Old) }

func (r ReplaceTemplate) replace(d *Data, from, to string) error {
	k, err := TemplatePathKey(r.File)
	if err != nil {
		return fmt.Errorf("ReplaceTemplate: %w", err)
	}
	return replaceValue(d, "ReplaceTemplate", k, jsonOf(from), jsonOf(to))
}

// TemplatePathKey is the data key holding configuration file file's template
// path: configuration-files.<file>.template-path.
func TemplatePathKey(file string) (string, error) {
	k, err := datastore.KeyFromSegments(datastore.DataKey, []string{"configuration-files", file, "template-path"})
	if err != nil {
		return "", err
	}
	return k.Name(), nil
}

// SettingMetadata names metadata of one data key.
type SettingMetadata struct {
	Setting  string
	Metadata []string
}

// AddMetadata is the migration for metadata that the new version adds.
// Forward does nothing: storewolf adds the new version's metadata. Backward
// removes each listed metadata entry.
type AddMetadata []SettingMetadata

// Forward implements Migration.
func (a AddMetadata) Forward(*Data) error { return removeMetadata(nil, "AddMetadata", a) }

// Backward implements Migration.
func (a AddMetadata) Backward(d *Data) error { return removeMetadata(d, "AddMetadata", a) }

// RemoveMetadata is the migration for metadata that the new version drops.
// Forward removes each listed metadata entry; Backward does nothing, because
// the older version's storewolf adds it back.
type RemoveMetadata []SettingMetadata

// Forward implements Migration.
func (r RemoveMetadata) Forward(d *Data) error { return removeMetadata(d, "RemoveMetadata", r) }

// Backward implements Migration.
func (r RemoveMetadata) Backward(*Data) error { return removeMetadata(nil, "RemoveMetadata", r) }

// ReplaceMetadata changes metadata Metadata of data key Setting from Old to
// New and back, only where it holds a value equal (as JSON) to the one being
// replaced. Old and New are JSON documents, e.g. json.RawMessage(`["motd"]`).
type ReplaceMetadata struct {
	Setting, Metadata string
	Old, New          json.RawMessage
}

// Forward implements Migration.
func (r ReplaceMetadata) Forward(d *Data) error { return r.replace(d, r.Old, r.New) }

// Backward implements Migration.
func (r ReplaceMetadata) Backward(d *Data) error { return r.replace(d, r.New, r.Old) }

func (r ReplaceMetadata) replace(d *Data, from, to json.RawMessage) error {
	k, err := dataKey("ReplaceMetadata", r.Setting)
	if err != nil {
		return err
	}
	mk, err := datastore.ParseKey(datastore.MetaKey, r.Metadata)
	if err != nil {
		return fmt.Errorf("ReplaceMetadata: %w", err)
	}
	if !json.Valid(from) || !json.Valid(to) {
		return fmt.Errorf("ReplaceMetadata %s of %s: old and new values must be JSON", mk, k)
	}
	if cur, ok := d.Metadata[k][mk.Name()]; ok && jsonEqual(cur, from) {
		d.Metadata[k][mk.Name()] = compact(to)
	}
	return nil
}

// AddPrefixes is the migration for whole trees of keys that the new version
// adds. Forward does nothing; Backward removes every data key and metadata
// entry whose key name starts with one of the prefixes. The match is a plain
// string prefix, as in the API's prefix queries: "settings.foo" also matches
// "settings.foobar". Prefer AddSettings, which matches whole segments.
type AddPrefixes []string

// Forward implements Migration.
func (a AddPrefixes) Forward(*Data) error { return checkPrefixes("AddPrefixes", a) }

// Backward implements Migration.
func (a AddPrefixes) Backward(d *Data) error { return removePrefixes(d, "AddPrefixes", a) }

// RemovePrefixes is the migration for whole trees of keys that the new
// version drops: Forward removes every data key and metadata entry whose key
// name starts with one of the prefixes (plain string prefix); Backward does
// nothing.
type RemovePrefixes []string

// Forward implements Migration.
func (r RemovePrefixes) Forward(d *Data) error { return removePrefixes(d, "RemovePrefixes", r) }

// Backward implements Migration.
func (r RemovePrefixes) Backward(*Data) error { return checkPrefixes("RemovePrefixes", r) }

// NoOp changes nothing in either direction. A release that needs a migration
// binary but no change (to keep a chain of names unbroken) can ship one.
type NoOp struct{}

// Forward implements Migration.
func (NoOp) Forward(*Data) error { return nil }

// Backward implements Migration.
func (NoOp) Backward(*Data) error { return nil }

// Sequence runs several migrations as one: Forward runs them in order,
// Backward runs their Backward in reverse order.
type Sequence []Migration

// Forward implements Migration.
func (s Sequence) Forward(d *Data) error {
	for i, m := range s {
		if err := m.Forward(d); err != nil {
			return fmt.Errorf("step %d (%T): %w", i+1, m, err)
		}
	}
	return nil
}

// Backward implements Migration.
func (s Sequence) Backward(d *Data) error {
	for i := len(s) - 1; i >= 0; i-- {
		if err := s[i].Backward(d); err != nil {
			return fmt.Errorf("step %d (%T): %w", i+1, s[i], err)
		}
	}
	return nil
}

// dataKey canonicalizes a data key name.
func dataKey(helper, name string) (string, error) {
	k, err := datastore.ParseKey(datastore.DataKey, name)
	if err != nil {
		return "", fmt.Errorf("%s: %w", helper, err)
	}
	return k.Name(), nil
}

func dataKeys(helper string, names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		k, err := dataKey(helper, n)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// under reports whether canonical key name is key or below it. Segments with
// a dot are quoted in canonical names, so a prefix ending in a dot always
// ends at a segment boundary.
func under(name, key string) bool {
	return name == key || strings.HasPrefix(name, key+".")
}

func removeSettings(d *Data, helper string, names []string) error {
	keys, err := dataKeys(helper, names)
	if err != nil {
		return err
	}
	for _, key := range keys {
		for name := range d.Data {
			if under(name, key) {
				delete(d.Data, name)
			}
		}
		for name := range d.Metadata {
			if under(name, key) {
				delete(d.Metadata, name)
			}
		}
	}
	return nil
}

// removeMetadata removes the listed metadata from d; with d nil it only
// checks the names.
func removeMetadata(d *Data, helper string, list []SettingMetadata) error {
	for _, sm := range list {
		k, err := dataKey(helper, sm.Setting)
		if err != nil {
			return err
		}
		for _, name := range sm.Metadata {
			mk, err := datastore.ParseKey(datastore.MetaKey, name)
			if err != nil {
				return fmt.Errorf("%s: metadata of %s: %w", helper, k, err)
			}
			if d == nil {
				continue
			}
			delete(d.Metadata[k], mk.Name())
			if m, ok := d.Metadata[k]; ok && len(m) == 0 {
				delete(d.Metadata, k)
			}
		}
	}
	return nil
}

func checkPrefixes(helper string, prefixes []string) error {
	for _, p := range prefixes {
		if p == "" {
			return fmt.Errorf("%s: an empty prefix would match every key", helper)
		}
	}
	return nil
}

func removePrefixes(d *Data, helper string, prefixes []string) error {
	if err := checkPrefixes(helper, prefixes); err != nil {
		return err
	}
	for _, p := range prefixes {
		for name := range d.Data {
			if strings.HasPrefix(name, p) {
				delete(d.Data, name)
			}
		}
		for name := range d.Metadata {
			if strings.HasPrefix(name, p) {
				delete(d.Metadata, name)
			}
		}
	}
	return nil
}

// replaceValue sets key to `to` where it holds a value equal to `from`.
func replaceValue(d *Data, helper, key string, from, to json.RawMessage) error {
	k, err := dataKey(helper, key)
	if err != nil {
		return err
	}
	if cur, ok := d.Data[k]; ok && jsonEqual(cur, from) {
		d.Data[k] = to
	}
	return nil
}

func jsonOf(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings and string slices reach here
	}
	return b
}

// jsonEqual reports whether two JSON documents have the same value.
func jsonEqual(a, b json.RawMessage) bool {
	va, err := decode(a)
	if err != nil {
		return false
	}
	vb, err := decode(b)
	if err != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func decode(b json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

func compact(b json.RawMessage) json.RawMessage {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return b
	}
	return out.Bytes()
}
