// Package userdata owns Gantry's user-data format: a TOML document,
// optionally gzip-compressed, whose top-level settings table holds the
// node's settings, as in Bottlerocket. It parses user data into a JSON-ready
// settings object, remembers the line on which every key is written, merges
// documents in order, and validates them against a variant's settings model
// with every problem reported as source:line: key: reason.
package userdata

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/gantry-os/gantry/pkg/datastore"
)

// MaxSize bounds user data in bytes, both as given and after gzip
// decompression, so a small gzip bomb cannot exhaust memory at boot.
const MaxSize = 1 << 20

// maxDepth bounds how deeply tables and lists may nest; the settings model
// is nowhere near this deep.
const maxDepth = 64

var gzipMagic = []byte{0x1f, 0x8b}

// Document is one parsed piece of user data.
type Document struct {
	// Source names where the user data came from; it prefixes every error.
	Source string
	// Settings is the top-level settings table as a JSON-ready object
	// (map[string]any, []any, string, bool and json.Number values). It is nil
	// when the user data has no settings table, which means "no data".
	Settings map[string]any

	lines map[string]int // key name, as the model spells it → line
}

// Empty reports whether the document carries no settings at all.
func (d *Document) Empty() bool { return d == nil || len(d.Settings) == 0 }

// Parse reads user data from source. Empty input, or input without a
// settings table, yields a Document with nil Settings. Problems with the
// content (size, compression, TOML syntax, values JSON cannot hold) are
// returned as an ErrorList whose entries carry the line.
func Parse(source string, data []byte) (*Document, error) {
	fail := func(line int, key, format string, args ...any) (*Document, error) {
		return nil, ErrorList{{Source: source, Line: line, Key: key, Reason: fmt.Sprintf(format, args...)}}
	}
	if len(data) > MaxSize {
		return fail(0, "", "user data is %d bytes; the limit is %d", len(data), MaxSize)
	}
	if bytes.HasPrefix(data, gzipMagic) {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return fail(0, "", "user data starts like gzip but is not: %v", err)
		}
		plain, err := io.ReadAll(io.LimitReader(zr, MaxSize+1))
		if err != nil {
			return fail(0, "", "decompress gzip user data: %v", err)
		}
		if len(plain) > MaxSize {
			return fail(0, "", "decompressed user data is larger than the limit of %d bytes", MaxSize)
		}
		data = plain
	}
	doc := &Document{Source: source}
	text := string(data)
	var top map[string]any
	if _, err := toml.Decode(text, &top); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return fail(pe.Position.Line, "", "invalid TOML: %s", pe.Message)
		}
		return fail(0, "", "invalid TOML: %v", err)
	}
	raw, ok := top["settings"]
	if !ok {
		return doc, nil
	}
	doc.lines = locateKeys(text)
	table, ok := raw.(map[string]any)
	if !ok {
		return fail(doc.Line("settings"), "settings", "expected a table, got %s", tomlKind(raw))
	}
	conv := converter{doc: doc}
	settings := conv.table([]string{"settings"}, table, 1)
	if len(conv.errs) > 0 {
		sort.SliceStable(conv.errs, func(i, j int) bool { return conv.errs[i].Line < conv.errs[j].Line })
		return nil, conv.errs
	}
	doc.Settings = settings
	return doc, nil
}

// Line returns the line on which key is written, key being named as the
// settings model names it (settings.kernel.sysctl."vm.max_map_count",
// settings.ntp.time-servers[1]). A key the document does not write itself
// gets the line of its closest enclosing key or table header; 0 means the
// document does not mention the key at all.
func (d *Document) Line(key string) int {
	line, _ := d.match(key)
	return line
}

// match returns the line of key, or of its longest written prefix, and the
// length of the key name matched (0: nothing matched).
func (d *Document) match(key string) (line, length int) {
	if d == nil {
		return 0, 0
	}
	if l, ok := d.lines[key]; ok {
		return l, len(key)
	}
	// Walk up the key: each '.' or '[' outside quotes ends a shorter key.
	var ends []int
	quoted := false
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c == '"' && (quoted || i == 0 || key[i-1] == '.'):
			quoted = !quoted
		case !quoted && (c == '.' || c == '['):
			ends = append(ends, i)
		}
	}
	for i := len(ends) - 1; i >= 0; i-- {
		if l, ok := d.lines[key[:ends[i]]]; ok {
			return l, ends[i]
		}
	}
	return 0, 0
}

// converter turns a decoded TOML tree into a JSON-ready one.
type converter struct {
	doc  *Document
	errs ErrorList
}

func (c *converter) fail(path []string, format string, args ...any) {
	key := keyName(path)
	c.errs = append(c.errs, Error{Source: c.doc.Source, Line: c.doc.Line(key), Key: key, Reason: fmt.Sprintf(format, args...)})
}

func (c *converter) table(path []string, t map[string]any, depth int) map[string]any {
	out := make(map[string]any, len(t))
	for k, v := range t {
		out[k] = c.value(appendPath(path, k), v, depth+1)
	}
	return out
}

func (c *converter) value(path []string, v any, depth int) any {
	if depth > maxDepth {
		c.fail(path, "tables and lists nest more than %d levels deep", maxDepth)
		return nil
	}
	switch t := v.(type) {
	case map[string]any:
		return c.table(path, t, depth)
	case []map[string]any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = c.table(appendPath(path, index(i)), e, depth+1)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = c.value(appendPath(path, index(i)), e, depth+1)
		}
		return out
	case string, bool:
		return t
	case int64:
		return json.Number(strconv.FormatInt(t, 10))
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			c.fail(path, "%v cannot be a setting's value (JSON has no NaN or infinity)", t)
			return nil
		}
		s := strconv.FormatFloat(t, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0" // a TOML float stays a float: 3.0 is not the integer 3
		}
		return json.Number(s)
	case time.Time:
		return formatTime(t)
	default:
		c.fail(path, "unsupported TOML value of type %T", v)
		return nil
	}
}

// formatTime writes a TOML date or time as the string it was written as,
// since no setting is a date; the model then judges the string.
func formatTime(t time.Time) string {
	switch t.Location().String() {
	case "datetime-local":
		return t.Format("2006-01-02T15:04:05.999999999")
	case "date-local":
		return t.Format("2006-01-02")
	case "time-local":
		return t.Format("15:04:05.999999999")
	}
	return t.Format(time.RFC3339Nano)
}

func tomlKind(v any) string {
	switch v.(type) {
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date or time"
	}
	return fmt.Sprintf("%T", v)
}

// keyName spells a key path the way the settings model does in its errors:
// segments joined by dots, a segment quoted when it contains a dot, list
// indexes appended as [n].
func keyName(path []string) string {
	var b strings.Builder
	for i, s := range path {
		if strings.HasPrefix(s, "[") {
			b.WriteString(s)
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(datastore.QuoteSegment(s))
	}
	return b.String()
}

func index(i int) string { return "[" + strconv.Itoa(i) + "]" }

func appendPath(path []string, seg ...string) []string {
	out := make([]string, 0, len(path)+len(seg))
	return append(append(out, path...), seg...)
}
