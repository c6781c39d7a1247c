// Package render owns configuration templates: Go text/template files
// rendered against the node's settings and release, with a small helper
// library covering what Bottlerocket's templates need (base64, joins,
// defaults, key/value maps, TOML/JSON/YAML-safe encoding, URL host and port).
package render

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/internal/network/proxy"
	"net"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/BurntSushi/toml"

	"github.com/gantry-os/gantry/pkg/datastore"
)

// Context is what a template sees: .settings (the live settings tree), .os
// (the release fields) and, for templates rendered once per entry of a
// table, .name and .item.
type Context map[string]any

// Load parses the template file at path.
func Load(path string) (*template.Template, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	return Parse(path, string(src))
}

// Parse parses template text; missing map keys are errors, as in
// Bottlerocket's strict mode, so use get/default for optional settings.
func Parse(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(Funcs()).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse template %s: %w", name, err)
	}
	return t, nil
}

// Execute renders t with ctx.
func Execute(t *template.Template, ctx Context) ([]byte, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, map[string]any(ctx)); err != nil {
		return nil, fmt.Errorf("render %s: %w", t.Name(), err)
	}
	return b.Bytes(), nil
}

// Funcs is the helper library available to every template.
func Funcs() template.FuncMap {
	return template.FuncMap{
		"get":          Get,
		"has":          func(v any, path string) bool { return Get(v, path) != nil },
		"default":      Default,
		"required":     required,
		"base64Decode": base64Decode,
		"join":         join,
		"joinQuoted":   joinQuoted,
		"joinMap":      joinMap,
		"keys":         sortedKeys,
		"toJSON":       toJSON,
		"toTOML":       toTOML,
		"quote":        strconv.Quote,
		"urlHost":      urlHost,
		"noProxy":      noProxy,
		"urlPort":      urlPort,
		"hostPort":     hostPort,
		"goarch":       goarch,
		"lower":        strings.ToLower,
		"upper":        strings.ToUpper,
		"replace":      func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
		"trim":         strings.TrimSpace,
		"list":         func(v ...any) []any { return v },
		"append":       appendList,
		"kindIs":       kindIs,
		"envQuote":     envQuote,
	}
}

// Get walks a dotted key path (segments with dots quoted, as in datastore
// keys) through nested maps and returns the value, or nil when any part is
// missing.
func Get(v any, path string) any {
	k, err := datastore.ParseKey(datastore.DataKey, path)
	if err != nil {
		return nil
	}
	cur := v
	for _, seg := range k.Segments() {
		m, ok := asMap(cur)
		if !ok {
			return nil
		}
		cur, ok = m[seg]
		if !ok {
			return nil
		}
	}
	return cur
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case Context:
		return m, true
	case datastore.Tree:
		return m, true
	}
	return nil, false
}

// Default returns v, or def when v is nil or an empty string.
func Default(def, v any) any {
	if v == nil {
		return def
	}
	if s, ok := v.(string); ok && s == "" {
		return def
	}
	return v
}

func required(msg string, v any) (any, error) {
	if v == nil {
		return nil, errors.New(msg)
	}
	return v, nil
}

func base64Decode(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("base64Decode: want a string, got %T", v)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("base64Decode: %w", err)
	}
	return string(b), nil
}

func toStrings(v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return nil, fmt.Errorf("want a list, got %T", v)
	}
	out := make([]string, rv.Len())
	for i := range out {
		out[i] = fmt.Sprint(rv.Index(i).Interface())
	}
	return out, nil
}

// join joins a list's items with sep.
func join(sep string, v any) (string, error) {
	items, err := toStrings(v)
	if err != nil {
		return "", fmt.Errorf("join: %w", err)
	}
	return strings.Join(items, sep), nil
}

// joinQuoted joins a list's items, each double-quoted, with sep.
func joinQuoted(sep string, v any) (string, error) {
	items, err := toStrings(v)
	if err != nil {
		return "", fmt.Errorf("joinQuoted: %w", err)
	}
	for i, s := range items {
		items[i] = strconv.Quote(s)
	}
	return strings.Join(items, sep), nil
}

// joinMap renders a map as k<kvSep>v pairs joined by pairSep, sorted by key.
func joinMap(kvSep, pairSep string, v any) (string, error) {
	if v == nil {
		return "", nil
	}
	m, ok := asMap(v)
	if !ok {
		return "", fmt.Errorf("joinMap: want a table, got %T", v)
	}
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+kvSep+fmt.Sprint(m[k]))
	}
	return strings.Join(parts, pairSep), nil
}

func sortedKeys(v any) []string {
	m, _ := asMap(v)
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func toTOML(v any) (string, error) {
	switch t := v.(type) {
	case string:
		return strconv.Quote(t), nil
	case bool, int, int64, float64, json.Number:
		return fmt.Sprint(t), nil
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(v); err != nil {
		return "", fmt.Errorf("toTOML: %w", err)
	}
	return strings.TrimRight(b.String(), "\n"), nil
}

func parseURL(v any) (*url.URL, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("want a URL string, got %T", v)
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return url.Parse(s)
}

// urlHost is the host of a URL (or of host[:port]), without the port.
func urlHost(v any) (string, error) {
	u, err := parseURL(v)
	if err != nil {
		return "", fmt.Errorf("urlHost: %w", err)
	}
	return u.Hostname(), nil
}

// noProxy is the comma-separated no-proxy list of the settings tree
// (settings.network.no-proxy and the automatic entries, package proxy).
func noProxy(settings any) (string, error) {
	var s proxy.Settings
	if v, ok := Get(settings, "network.no-proxy").([]any); ok {
		for _, e := range v {
			str, ok := e.(string)
			if !ok {
				return "", fmt.Errorf("noProxy: network.no-proxy holds %T, not a string", e)
			}
			s.NoProxy = append(s.NoProxy, str)
		}
	}
	s.APIServer, _ = Get(settings, "kubernetes.api-server").(string)
	s.ClusterDomain, _ = Get(settings, "kubernetes.cluster-domain").(string)
	return strings.Join(s.NoProxyList(), ","), nil
}

// urlPort is the port of a URL, or the scheme's default.
func urlPort(v any) (string, error) {
	u, err := parseURL(v)
	if err != nil {
		return "", fmt.Errorf("urlPort: %w", err)
	}
	if p := u.Port(); p != "" {
		return p, nil
	}
	if u.Scheme == "https" {
		return "443", nil
	}
	return "80", nil
}

// hostPort joins a host and port, bracketing IPv6 addresses.
func hostPort(host string, port any) string {
	return net.JoinHostPort(host, fmt.Sprint(port))
}

func goarch(arch string) string {
	switch arch {
	case "x86_64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return arch
}

// envQuote quotes a value for a systemd EnvironmentFile line.
func envQuote(v any) string {
	s := fmt.Sprint(v)
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// appendList returns a new list of list's items followed by v.
func appendList(list any, v ...any) ([]any, error) {
	out := []any{}
	if list != nil {
		rv := reflect.ValueOf(list)
		if rv.Kind() != reflect.Slice {
			return nil, fmt.Errorf("append: want a list, got %T", list)
		}
		for i := 0; i < rv.Len(); i++ {
			out = append(out, rv.Index(i).Interface())
		}
	}
	return append(out, v...), nil
}

// kindIs reports whether v is a "slice", "map", "string", "bool" or "number".
func kindIs(kind string, v any) bool {
	switch v.(type) {
	case []any:
		return kind == "slice"
	case map[string]any:
		return kind == "map"
	case string:
		return kind == "string"
	case bool:
		return kind == "bool"
	case json.Number, float64, int, int64:
		return kind == "number"
	}
	return false
}
