package userdata

import (
	"strconv"
	"strings"
)

// Error is one problem in user data, located at its source and line.
type Error struct {
	Source string // where the user data came from
	Line   int    // 1-based; 0 when the problem has no line (size, compression)
	Key    string // the settings key, as the model names it; "" for syntax errors
	Reason string
}

// Error formats the problem as source:line: key: reason.
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		if e.Source != "" {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Line))
		} else {
			b.WriteString("line " + strconv.Itoa(e.Line))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// ErrorList collects every problem found in user data.
type ErrorList []Error

func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}
