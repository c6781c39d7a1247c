package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/gantry-os/gantry/pkg/datastore"
)

// Validator is implemented by modeled types that check their own value
// (named string types such as SysctlKey).
type Validator interface{ Validate() error }

// JSONChecker is implemented by types whose JSON may take more than one form
// (a number or a string, say); it replaces the kind-based check.
type JSONChecker interface{ CheckJSON(v any) error }

// FieldError says why the value at Key was refused.
type FieldError struct {
	Key    string
	Reason string
}

func (e FieldError) Error() string { return e.Key + ": " + e.Reason }

// ValidationError collects every refused field of a document.
type ValidationError []FieldError

func (e ValidationError) Error() string {
	parts := make([]string, len(e))
	for i, f := range e {
		parts[i] = f.Error()
	}
	return strings.Join(parts, "; ")
}

type checker struct {
	errs ValidationError
}

func (c *checker) fail(path []string, format string, args ...any) {
	c.errs = append(c.errs, FieldError{Key: keyName(path), Reason: fmt.Sprintf(format, args...)})
}

func keyName(path []string) string {
	var b strings.Builder
	for i, s := range path {
		if strings.HasPrefix(s, "[") { // a list index, written key[3]
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

// fieldByName maps a struct's JSON names to its fields.
func fieldByName(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := jsonName(f)
		if name != "" {
			out[name] = f
		}
	}
	return out
}

func jsonName(f reflect.StructField) string {
	tag := f.Tag.Get("json")
	if tag == "-" || !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(tag, ",")
	if name == "" {
		return f.Name
	}
	return name
}

var (
	validatorType   = reflect.TypeFor[Validator]()
	jsonCheckerType = reflect.TypeFor[JSONChecker]()
)

// check validates v (decoded with UseNumber) against t, recording errors.
func (c *checker) check(path []string, t reflect.Type, v any) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return // nulls are dropped, as Bottlerocket does
	}
	if t.Implements(jsonCheckerType) {
		if err := reflect.Zero(t).Interface().(JSONChecker).CheckJSON(v); err != nil {
			c.fail(path, "%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			c.fail(path, "expected an object, got %s", jsonKind(v))
			return
		}
		fields := fieldByName(t)
		for _, name := range sortedNames(obj) {
			f, ok := fields[name]
			p := appendPath(path, name)
			if !ok {
				c.fail(p, "unknown setting (allowed here: %s)", strings.Join(sortedFieldNames(fields), ", "))
				continue
			}
			c.check(p, f.Type, obj[name])
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			c.fail(path, "expected an object, got %s", jsonKind(v))
			return
		}
		for _, name := range sortedNames(obj) {
			p := appendPath(path, name)
			if err := datastore.CheckSegment(name); err != nil {
				c.fail(p, "invalid name: %v", err)
				continue
			}
			if err := validateString(t.Key(), name); err != nil {
				c.fail(p, "invalid name: %v", err)
				continue
			}
			c.check(p, t.Elem(), obj[name])
		}
	case reflect.Slice:
		arr, ok := v.([]any)
		if !ok {
			c.fail(path, "expected a list, got %s", jsonKind(v))
			return
		}
		for i, e := range arr {
			p := appendPath(path, fmt.Sprintf("[%d]", i))
			if e == nil {
				c.fail(p, "list elements cannot be null")
				continue
			}
			c.check(p, t.Elem(), e)
		}
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			c.fail(path, "expected a string, got %s", jsonKind(v))
			return
		}
		if err := validateString(t, s); err != nil {
			c.fail(path, "%v", err)
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			c.fail(path, "expected true or false, got %s", jsonKind(v))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			c.fail(path, "expected an integer, got %s", jsonKind(v))
			return
		}
		if _, err := strconv.ParseInt(n.String(), 10, t.Bits()); err != nil {
			c.fail(path, "expected an integer that fits in %d bits, got %s", t.Bits(), n)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if !ok {
			c.fail(path, "expected a non-negative integer, got %s", jsonKind(v))
			return
		}
		if _, err := strconv.ParseUint(n.String(), 10, t.Bits()); err != nil {
			c.fail(path, "expected a non-negative integer up to %d, got %s", uint64(math.MaxUint64>>(64-t.Bits())), n)
		}
	case reflect.Float32, reflect.Float64:
		if _, ok := v.(json.Number); !ok {
			c.fail(path, "expected a number, got %s", jsonKind(v))
		}
	default:
		c.fail(path, "unsupported type %s in the model", t)
	}
}

// validateString runs the Validate method of a named string type.
func validateString(t reflect.Type, s string) error {
	if t.Kind() != reflect.String || !t.Implements(validatorType) {
		return nil
	}
	v := reflect.New(t).Elem()
	v.SetString(s)
	return v.Interface().(Validator).Validate()
}

func appendPath(path []string, seg string) []string {
	p := make([]string, len(path)+1)
	copy(p, path)
	p[len(path)] = seg
	return p
}

func sortedNames(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedFieldNames(m map[string]reflect.StructField) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func jsonKind(v any) string {
	switch t := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("the string %q", truncate(t, 64))
	case bool:
		return fmt.Sprintf("the boolean %v", t)
	case json.Number:
		return "the number " + t.String()
	default:
		return fmt.Sprintf("%T", v)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// DecodeJSON decodes one JSON document, numbers kept exact; trailing data is
// an error.
func DecodeJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("malformed JSON: unexpected data after the document")
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("malformed JSON: unexpected data after the document")
	}
	return v, nil
}

// typeAt walks t, the type at key base, along segs and returns the type
// found there.
func typeAt(t reflect.Type, base, segs []string) (reflect.Type, error) {
	single := func(i int) error {
		return fmt.Errorf("%s is a single value and has no %q below it (quote names that contain dots, e.g. kernel.sysctl.\"vm.max_map_count\")",
			keyName(append(append([]string(nil), base...), segs[:i]...)), segs[i])
	}
	for i, seg := range segs {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Implements(jsonCheckerType) {
			return nil, single(i)
		}
		switch t.Kind() {
		case reflect.Struct:
			f, ok := fieldByName(t)[seg]
			if !ok {
				return nil, fmt.Errorf("unknown setting (allowed here: %s)", strings.Join(sortedFieldNames(fieldByName(t)), ", "))
			}
			t = f.Type
		case reflect.Map:
			if err := validateString(t.Key(), seg); err != nil {
				return nil, fmt.Errorf("invalid name %q: %v", seg, err)
			}
			t = t.Elem()
		default:
			return nil, single(i)
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t, nil
}

// coerce turns the text of a key=value pair into the JSON value the model
// expects at type t. Unlike Bottlerocket, which guesses the type from the text
// alone (so "42" can never be a string), the model decides.
func coerce(t reflect.Type, text string) (any, error) {
	if t.Implements(jsonCheckerType) {
		if v, err := DecodeJSON([]byte(text)); err == nil {
			if reflect.Zero(t).Interface().(JSONChecker).CheckJSON(v) == nil {
				return v, nil
			}
		}
		return text, nil
	}
	switch t.Kind() {
	case reflect.String:
		return text, nil
	case reflect.Bool:
		switch text {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("expected true or false, got %q", text)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if _, err := strconv.ParseFloat(text, 64); err != nil {
			return nil, fmt.Errorf("expected a number, got %q", text)
		}
		return json.Number(text), nil
	default:
		v, err := DecodeJSON([]byte(text))
		if err != nil {
			return nil, fmt.Errorf("this setting is a %s: give its value as JSON, or use `apiclient set --json` (%v)", kindName(t), err)
		}
		return v, nil
	}
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice:
		return "list"
	case reflect.Struct, reflect.Map:
		return "table"
	}
	return t.Kind().String()
}
