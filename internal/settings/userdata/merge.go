package userdata

import (
	"errors"
	"fmt"
	"sort"

	"github.com/gantry-os/gantry/pkg/model"
)

// Merge deep-merges the settings of docs, in order, into a new object:
// later documents override earlier ones key by key, tables merge, and lists
// and single values are replaced whole. The documents are not modified.
func Merge(docs ...*Document) map[string]any {
	out := map[string]any{}
	for _, d := range docs {
		if d != nil {
			mergeInto(out, d.Settings)
		}
	}
	return out
}

func mergeInto(dst, src map[string]any) {
	for k, sv := range src {
		if st, ok := sv.(map[string]any); ok {
			if dt, ok := dst[k].(map[string]any); ok {
				mergeInto(dt, st)
				continue
			}
		}
		dst[k] = clone(sv)
	}
}

func clone(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = clone(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = clone(e)
		}
		return out
	}
	return v
}

// Validate checks the document's settings against the model m. It returns
// nil, or an ErrorList with the source and line of every refused key.
func (d *Document) Validate(m *model.Model) error {
	if d == nil || d.Settings == nil {
		return nil
	}
	return Check(m, d.Settings, d)
}

// Check validates a settings object against the model m; settings is one
// document's, or the Merge of docs. It returns nil, or an ErrorList that
// attributes each refused key to the document that writes it (the last one,
// as the last one wins the merge) with that document's source and line.
func Check(m *model.Model, settings map[string]any, docs ...*Document) error {
	err := m.CheckSettings(settings)
	if err == nil {
		return nil
	}
	var ve model.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("validate user data: %w", err)
	}
	out := make(ErrorList, len(ve))
	order := make([]int, len(ve))
	for i, fe := range ve {
		out[i], order[i] = attribute(fe, docs)
	}
	// Report in reading order: by document, then by line.
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		x, y := idx[a], idx[b]
		if order[x] != order[y] {
			return order[x] < order[y]
		}
		return out[x].Line < out[y].Line
	})
	sorted := make(ErrorList, len(out))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	return sorted
}

// attribute finds the document that writes key, or the longest part of it,
// preferring later documents.
// It returns the error and the index of that document.
func attribute(fe model.FieldError, docs []*Document) (Error, int) {
	e := Error{Key: fe.Key, Reason: fe.Reason}
	best, at := -1, len(docs)
	for i := len(docs) - 1; i >= 0; i-- {
		if docs[i] == nil {
			continue
		}
		line, n := docs[i].match(fe.Key)
		if n > best {
			best, at, e.Source, e.Line = n, i, docs[i].Source, line
		}
	}
	return e, at
}
