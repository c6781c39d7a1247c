package datastore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Flatten turns a nested JSON document into dotted keys under prefix: objects
// become key segments, arrays and scalars become leaf values (stored whole as
// JSON), and nulls are dropped.
func Flatten(prefix []string, doc any) (map[Key]json.RawMessage, error) {
	out := map[Key]json.RawMessage{}
	if err := flattenInto(out, prefix, doc); err != nil {
		return nil, err
	}
	return out, nil
}

func flattenInto(out map[Key]json.RawMessage, path []string, v any) error {
	switch t := v.(type) {
	case nil:
		return nil
	case map[string]any:
		for name, child := range t {
			if err := CheckSegment(name); err != nil {
				return &KeyError{joinSegments(path) + "." + name, err.Error()}
			}
			p := make([]string, len(path)+1)
			copy(p, path)
			p[len(path)] = name
			if err := flattenInto(out, p, child); err != nil {
				return err
			}
		}
		return nil
	default:
		k, err := KeyFromSegments(DataKey, path)
		if err != nil {
			return err
		}
		raw, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("encode %s: %w", k, err)
		}
		out[k] = raw
		return nil
	}
}

// Tree is a nested document built from flat keys; its leaves are raw JSON.
type Tree map[string]any

// Unflatten builds the nested document of the given pairs (key name → raw
// JSON), dropping the first strip segments of every key. Keys that do not
// have more than strip segments are ignored.
func Unflatten(pairs map[string]json.RawMessage, strip int) (Tree, error) {
	root := Tree{}
	names := make([]string, 0, len(pairs))
	for n := range pairs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		segs, ok := splitStored(n)
		if !ok {
			return nil, fmt.Errorf("corrupt key in datastore: %q", n)
		}
		if len(segs) <= strip {
			continue
		}
		segs = segs[strip:]
		node := root
		for i, s := range segs[:len(segs)-1] {
			child, ok := node[s]
			if !ok {
				c := Tree{}
				node[s] = c
				node = c
				continue
			}
			c, ok := child.(Tree)
			if !ok {
				return nil, fmt.Errorf("datastore conflict: %s is a value and also has children", joinSegments(segs[:i+1]))
			}
			node = c
		}
		last := segs[len(segs)-1]
		if _, exists := node[last]; exists {
			return nil, fmt.Errorf("datastore conflict: %s is a value and also has children", n)
		}
		node[last] = pairs[n]
	}
	return root, nil
}

// MarshalJSON writes the tree with its keys sorted.
func (t Tree) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	if err := t.encode(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (t Tree) encode(b *bytes.Buffer) error {
	names := make([]string, 0, len(t))
	for n := range t {
		names = append(names, n)
	}
	sort.Strings(names)
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(b, n)
		b.WriteByte(':')
		switch v := t[n].(type) {
		case Tree:
			if err := v.encode(b); err != nil {
				return err
			}
		case json.RawMessage:
			b.Write(v)
		default:
			vb, err := json.Marshal(v)
			if err != nil {
				return err
			}
			b.Write(vb)
		}
	}
	b.WriteByte('}')
	return nil
}

// splitStored splits a canonical key name, as the store holds them, into
// segments. It skips ParseKey's character checks, which every key passed
// when it was written, so that reading a large tree stays cheap.
func splitStored(name string) ([]string, bool) {
	segs := make([]string, 0, 6)
	start := 0
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '"':
			end := strings.IndexByte(name[i+1:], '"')
			if end < 0 {
				return nil, false
			}
			i += end + 1
		case '.':
			segs = append(segs, unquote(name[start:i]))
			start = i + 1
		}
	}
	segs = append(segs, unquote(name[start:]))
	for _, s := range segs {
		if s == "" {
			return nil, false
		}
	}
	return segs, true
}

func unquote(seg string) string {
	if len(seg) >= 2 && seg[0] == '"' && seg[len(seg)-1] == '"' {
		return seg[1 : len(seg)-1]
	}
	return seg
}

// AppendJSON appends the tree's JSON encoding to b.
func (t Tree) AppendJSON(b []byte) ([]byte, error) {
	buf := bytes.NewBuffer(b)
	err := t.encode(buf)
	return buf.Bytes(), err
}

// writeJSONString writes s as a JSON string; key segments hold only
// characters that need no escaping, so the slow path is rare.
func writeJSONString(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			kb, _ := json.Marshal(s)
			b.Write(kb)
			return
		}
	}
	b.WriteByte('"')
	b.WriteString(s)
	b.WriteByte('"')
}
