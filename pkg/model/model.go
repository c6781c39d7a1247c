// Package model owns Gantry's typed settings model: the settings groups and
// modeled types (with Bottlerocket's key names and validation rules), which
// groups each variant has, the services and configuration-files records, and
// the conversion of API input (JSON documents, key=value pairs) into
// validated datastore keys. Every refusal names the key and the reason.
package model

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/gantry-os/gantry/pkg/datastore"
)

// Group is one top-level settings group, such as kernel or host-containers.
type Group struct {
	Name string
	Type reflect.Type
	Doc  string
}

// Groups is the catalogue of every settings group Gantry knows.
func Groups() []Group {
	return []Group{
		{"motd", reflect.TypeFor[string](), "Message of the day, written to /etc/motd."},
		{"updates", reflect.TypeFor[UpdatesSettings](), "Image-based updates."},
		{"host-containers", reflect.TypeFor[map[Identifier]HostContainer](), "Host containers by name."},
		{"bootstrap-containers", reflect.TypeFor[map[Identifier]BootstrapContainer](), "Bootstrap containers by name."},
		{"bootstrap-commands", reflect.TypeFor[map[Identifier]BootstrapCommand](), "Bootstrap commands by name."},
		{"ntp", reflect.TypeFor[NTPSettings](), "Time synchronization."},
		{"network", reflect.TypeFor[NetworkSettings](), "Host name, static hosts and proxies."},
		{"dns", reflect.TypeFor[DNSSettings](), "Name resolution."},
		{"kernel", reflect.TypeFor[KernelSettings](), "Kernel parameters, lockdown and modules."},
		{"boot", reflect.TypeFor[BootSettings](), "Kernel and init command lines."},
		{"metrics", reflect.TypeFor[MetricsSettings](), "Anonymous health metrics."},
		{"pki", reflect.TypeFor[map[Identifier]PKIBundle](), "Certificate bundles by name."},
		{"container-registry", reflect.TypeFor[ContainerRegistrySettings](), "Registry mirrors and credentials."},
		{"oci-hooks", reflect.TypeFor[OCIHooksSettings](), "OCI hooks."},
		{"oci-defaults", reflect.TypeFor[OCIDefaultsSettings](), "Defaults of orchestrated containers' OCI spec."},
		{"container-runtime", reflect.TypeFor[ContainerRuntimeSettings](), "containerd CRI tuning."},
		{"aws", reflect.TypeFor[AWSSettings](), "AWS region and credentials."},
		{"kubernetes", reflect.TypeFor[KubernetesSettings](), "The kubelet and cluster membership."},
		{"ecs", reflect.TypeFor[ECSSettings](), "The Amazon ECS agent."},
	}
}

// baseGroups are the groups of every variant.
var baseGroups = []string{"motd", "updates", "host-containers", "bootstrap-containers", "bootstrap-commands",
	"ntp", "network", "dns", "kernel", "boot", "metrics", "pki", "container-registry", "oci-hooks"}

// DefaultVariant is the variant a program assumes when nothing names one:
// the one gantry build builds and gantry run boots by default.
const DefaultVariant = "metal-dev"

// ResolveVariant is the variant a node program works for: the one named
// (its --variant flag), else the release file's VARIANT_ID, else
// DefaultVariant. fallback says whether it fell back to the default.
func ResolveVariant(named, release string) (variant string, fallback bool) {
	switch {
	case named != "":
		return named, false
	case release != "":
		return release, false
	}
	return DefaultVariant, true
}

// BuiltinVariants maps each variant this repository defines to its groups.
func BuiltinVariants() map[string][]string {
	k8s := append(append([]string(nil), baseGroups...), "kubernetes", "aws", "oci-defaults", "container-runtime")
	return map[string][]string{
		"metal-dev":      append([]string(nil), baseGroups...),
		"metal-k8s-1.37": k8s,
	}
}

// Model is the settings model of one variant.
type Model struct {
	variant string
	groups  map[string]reflect.Type
}

// New builds the model of a variant from the names of its groups.
func New(variant string, groupNames []string) (*Model, error) {
	all := map[string]reflect.Type{}
	for _, g := range Groups() {
		all[g.Name] = g.Type
	}
	m := &Model{variant: variant, groups: map[string]reflect.Type{}}
	for _, n := range groupNames {
		t, ok := all[n]
		if !ok {
			return nil, fmt.Errorf("variant %s: unknown settings group %q", variant, n)
		}
		m.groups[n] = t
	}
	return m, nil
}

// ForVariant returns the model of a built-in variant.
func ForVariant(variant string) (*Model, error) {
	groups, ok := BuiltinVariants()[variant]
	if !ok {
		known := make([]string, 0)
		for v := range BuiltinVariants() {
			known = append(known, v)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("unknown variant %q (known: %s)", variant, strings.Join(known, ", "))
	}
	return New(variant, groups)
}

// Variant names the model's variant.
func (m *Model) Variant() string { return m.variant }

// GroupNames lists the model's groups, sorted.
func (m *Model) GroupNames() []string {
	out := make([]string, 0, len(m.groups))
	for n := range m.groups {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// CheckSettings validates a bare settings object (decoded with UseNumber)
// and returns every problem, or nil.
func (m *Model) CheckSettings(doc any) error {
	obj, ok := doc.(map[string]any)
	if !ok {
		return ValidationError{{Key: "settings", Reason: "expected an object, got " + jsonKind(doc)}}
	}
	var c checker
	for _, name := range sortedNames(obj) {
		t, ok := m.groups[name]
		if !ok {
			c.fail([]string{"settings", name}, "unknown settings group for variant %s (allowed: %s)", m.variant, strings.Join(m.GroupNames(), ", "))
			continue
		}
		c.check([]string{"settings", name}, t, obj[name])
	}
	if len(c.errs) > 0 {
		return c.errs
	}
	return nil
}

// SettingsPairs validates a JSON settings object (no "settings" wrapper) and
// returns its flat keys under settings.
func (m *Model) SettingsPairs(body []byte) (map[datastore.Key]json.RawMessage, error) {
	doc, err := DecodeJSON(body)
	if err != nil {
		return nil, err
	}
	return m.SettingsDocPairs(doc)
}

// SettingsDocPairs is SettingsPairs for a decoded document (UseNumber).
func (m *Model) SettingsDocPairs(doc any) (map[datastore.Key]json.RawMessage, error) {
	if err := m.CheckSettings(doc); err != nil {
		return nil, err
	}
	return datastore.Flatten([]string{"settings"}, doc)
}

// KeypairPairs turns key=value lines into validated settings keys. A key
// that does not start with "settings." gets it prepended. The value's type is
// the one the model has at that key, so "42" can be a string and a sysctl
// value stays a string; lists and tables take JSON.
func (m *Model) KeypairPairs(lines []string) (map[datastore.Key]json.RawMessage, error) {
	doc := map[string]any{}
	var errs ValidationError
	for _, line := range lines {
		keyText, value, ok := strings.Cut(line, "=")
		if !ok {
			errs = append(errs, FieldError{Key: line, Reason: "expected key=value"})
			continue
		}
		key, err := datastore.ParseKey(datastore.DataKey, keyText)
		if err != nil {
			errs = append(errs, FieldError{Key: keyText, Reason: err.(*datastore.KeyError).Reason})
			continue
		}
		segs := key.Segments()
		if segs[0] != "settings" {
			segs = append([]string{"settings"}, segs...)
		}
		if len(segs) < 2 {
			errs = append(errs, FieldError{Key: keyText, Reason: "name a setting, not the whole settings tree"})
			continue
		}
		v, err := m.coerceAt(segs, value)
		if err != nil {
			errs = append(errs, FieldError{Key: keyName(segs), Reason: err.Error()})
			continue
		}
		if err := insert(doc, segs[1:], v); err != nil {
			errs = append(errs, FieldError{Key: keyName(segs), Reason: err.Error()})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return m.SettingsDocPairs(doc)
}

// coerceAt converts text to the value the model wants at the key
// settings.<group>.<rest...> given by segs.
func (m *Model) coerceAt(segs []string, text string) (any, error) {
	t, ok := m.groups[segs[1]]
	if !ok {
		return nil, fmt.Errorf("unknown settings group for variant %s (allowed: %s)", m.variant, strings.Join(m.GroupNames(), ", "))
	}
	t, err := typeAt(t, segs[:2], segs[2:])
	if err != nil {
		return nil, err
	}
	return coerce(t, text)
}

func insert(doc map[string]any, segs []string, v any) error {
	node := doc
	for _, s := range segs[:len(segs)-1] {
		child, ok := node[s]
		if !ok {
			c := map[string]any{}
			node[s] = c
			node = c
			continue
		}
		c, ok := child.(map[string]any)
		if !ok {
			return fmt.Errorf("conflicts with another pair that sets %s as a single value", s)
		}
		node = c
	}
	last := segs[len(segs)-1]
	if _, exists := node[last]; exists {
		return fmt.Errorf("given more than once")
	}
	node[last] = v
	return nil
}

// Service says which configuration files a service uses and how to restart it.
type Service struct {
	ConfigurationFiles []SingleLineString `json:"configuration-files,omitempty"`
	RestartCommands    []string           `json:"restart-commands,omitempty"`
}

// ConfigurationFile says where a file is rendered and from which template.
type ConfigurationFile struct {
	Path         *SingleLineString `json:"path,omitempty"`
	TemplatePath *SingleLineString `json:"template-path,omitempty"`
	Mode         *FileMode         `json:"mode,omitempty"`
	// RenderEach names a settings table (such as settings.host-containers)
	// to render the file once per entry; {name} in Path is the entry's name.
	RenderEach *SingleLineString `json:"render-each,omitempty"`
}

// CheckSection validates a non-settings section of the datastore
// ("services" or "configuration-files").
func CheckSection(section string, doc any) error {
	var t reflect.Type
	switch section {
	case "services":
		t = reflect.TypeFor[map[string]Service]()
	case "configuration-files":
		t = reflect.TypeFor[map[string]ConfigurationFile]()
	default:
		return ValidationError{{Key: section, Reason: "unknown section (allowed: settings, services, configuration-files, metadata)"}}
	}
	var c checker
	c.check([]string{section}, t, doc)
	if len(c.errs) > 0 {
		return c.errs
	}
	return nil
}

// NormalizeJSON converts a document decoded by another decoder (TOML, say)
// into the form the checks expect (json.Number numbers).
func NormalizeJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode as JSON: %w", err)
	}
	return DecodeJSON(b)
}
