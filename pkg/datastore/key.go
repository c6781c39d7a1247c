// Package datastore owns Gantry's settings store: key syntax, the transactional
// bbolt-backed store with live data, metadata and named pending transactions,
// the versioned on-disk layout (the `current` link chain) and the conversion
// between nested JSON documents and flat dotted keys.
package datastore

import (
	"fmt"
	"strings"
)

// MaxKeyLen is the longest key name accepted, in bytes (a file name's limit,
// kept from Bottlerocket so that keys stay portable to a filesystem layout).
const MaxKeyLen = 255

// KeyType tells data keys, which may have many segments, from metadata keys,
// which have exactly one.
type KeyType int

const (
	// DataKey names a value, e.g. settings.kernel.sysctl."vm.max_map_count".
	DataKey KeyType = iota
	// MetaKey names a piece of metadata, e.g. affected-services.
	MetaKey
)

func (t KeyType) String() string {
	if t == MetaKey {
		return "metadata key"
	}
	return "data key"
}

// Key is a parsed, validated key. Two keys are equal when their segments are
// equal; Name is the canonical spelling, which quotes exactly the segments
// that contain a dot.
type Key struct {
	segs string // segments joined by NUL, which no segment contains; keeps Key comparable
	name string
}

func (k Key) segments() []string {
	if k.segs == "" {
		return nil
	}
	return strings.Split(k.segs, "\x00")
}

// KeyError reports a key that cannot be parsed.
type KeyError struct {
	Input  string
	Reason string
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("invalid key %q: %s", e.Input, e.Reason)
}

// validSegmentChar reports whether c may appear in a key segment. A dot may
// also appear, but only inside a quoted segment.
func validSegmentChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == '/'
}

// ParseKey parses a key name such as a.b."c.d".e.
func ParseKey(t KeyType, s string) (Key, error) {
	if s == "" {
		return Key{}, &KeyError{s, "key is empty"}
	}
	if len(s) > MaxKeyLen {
		return Key{}, &KeyError{s, fmt.Sprintf("longer than %d bytes", MaxKeyLen)}
	}
	var segs []string
	var cur strings.Builder
	quoted := false
	segStarted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quoted = !quoted
			segStarted = true
		case c == '.' && !quoted:
			if cur.Len() == 0 {
				return Key{}, &KeyError{s, "empty segment"}
			}
			segs = append(segs, cur.String())
			cur.Reset()
			segStarted = false
		case c == '.' || validSegmentChar(c):
			cur.WriteByte(c)
			segStarted = true
		default:
			return Key{}, &KeyError{s, fmt.Sprintf("character %q is not allowed (allowed: a-z A-Z 0-9 _ - /, and . inside quotes)", c)}
		}
	}
	if quoted {
		return Key{}, &KeyError{s, "unbalanced quotes"}
	}
	if cur.Len() == 0 {
		if segStarted {
			return Key{}, &KeyError{s, "empty segment"}
		}
		return Key{}, &KeyError{s, "trailing dot"}
	}
	segs = append(segs, cur.String())
	if t == MetaKey && len(segs) != 1 {
		return Key{}, &KeyError{s, "a metadata key has exactly one segment"}
	}
	return KeyFromSegments(t, segs)
}

// KeyFromSegments builds a key from its segments, quoting those with a dot.
func KeyFromSegments(t KeyType, segs []string) (Key, error) {
	if len(segs) == 0 {
		return Key{}, &KeyError{"", "key is empty"}
	}
	if t == MetaKey && len(segs) != 1 {
		return Key{}, &KeyError{strings.Join(segs, "."), "a metadata key has exactly one segment"}
	}
	var b strings.Builder
	for i, seg := range segs {
		if err := CheckSegment(seg); err != nil {
			return Key{}, &KeyError{strings.Join(segs, "."), err.Error()}
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(QuoteSegment(seg))
	}
	name := b.String()
	if len(name) > MaxKeyLen {
		return Key{}, &KeyError{name, fmt.Sprintf("longer than %d bytes", MaxKeyLen)}
	}
	return Key{segs: strings.Join(segs, "\x00"), name: name}, nil
}

// CheckSegment reports whether seg can be one segment of a key.
func CheckSegment(seg string) error {
	if seg == "" {
		return fmt.Errorf("empty segment")
	}
	for i := 0; i < len(seg); i++ {
		if c := seg[i]; c != '.' && !validSegmentChar(c) {
			return fmt.Errorf("segment %q: character %q is not allowed (allowed: a-z A-Z 0-9 _ - . /)", seg, c)
		}
	}
	return nil
}

// QuoteSegment returns seg as it is written inside a key name.
func QuoteSegment(seg string) string {
	if strings.Contains(seg, ".") {
		return `"` + seg + `"`
	}
	return seg
}

// MustKey parses a key known to be valid, for constants in code; it panics on
// a malformed literal, which is a programming error.
func MustKey(t KeyType, s string) Key {
	k, err := ParseKey(t, s)
	if err != nil {
		panic(err)
	}
	return k
}

// Name is the canonical spelling of the key.
func (k Key) Name() string { return k.name }

func (k Key) String() string { return k.name }

// Segments returns a copy of the key's segments.
func (k Key) Segments() []string { return k.segments() }

// StartsWithSegments reports whether p's segments are a prefix of k's.
func (k Key) StartsWithSegments(p Key) bool {
	return k.segs == p.segs || strings.HasPrefix(k.segs, p.segs+"\x00")
}

// Ancestors returns k's ancestors from the shortest to k itself.
func (k Key) Ancestors() []Key {
	all := k.segments()
	out := make([]Key, 0, len(all))
	for i := 1; i <= len(all); i++ {
		segs := all[:i]
		out = append(out, Key{segs: strings.Join(segs, "\x00"), name: joinSegments(segs)})
	}
	return out
}

func joinSegments(segs []string) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(QuoteSegment(s))
	}
	return b.String()
}
