package userdata

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// locateKeys finds the line on which every key of a TOML document is
// written. It runs only on text the TOML decoder has accepted, so it can be a
// small scanner rather than a parser: it follows table headers (including
// arrays of tables), dotted keys, inline tables and arrays (whose elements
// get [n] keys), and skips strings and comments. A key that is only implied
// (settings.kernel by [settings.kernel.sysctl]) gets the first line that
// implies it. The result maps key names, spelled as the model spells them,
// to lines. It never fails: on text it does not follow it makes progress
// and records less.
func locateKeys(src string) map[string]int {
	switch {
	case strings.HasPrefix(src, "\xef\xbb\xbf"):
		src = src[3:]
	case strings.HasPrefix(src, "\xff\xfe"), strings.HasPrefix(src, "\xfe\xff"):
		src = src[2:]
	}
	l := &locator{src: src, line: 1, lines: map[string]int{}, arrays: map[string]int{}}
	l.document()
	return l.lines
}

// maxRecordDepth is how deeply nested values are followed; deeper ones are
// skipped without recording keys (the converter refuses them anyway).
const maxRecordDepth = maxDepth + 2

type locator struct {
	src    string
	pos    int
	line   int
	lines  map[string]int // key name → line
	arrays map[string]int // array-of-tables key name → elements so far
}

func (l *locator) eof() bool { return l.pos >= len(l.src) }

func (l *locator) peek() byte {
	if l.eof() {
		return 0
	}
	return l.src[l.pos]
}

func (l *locator) has(s string) bool { return strings.HasPrefix(l.src[l.pos:], s) }

// advance moves past one byte, counting lines.
func (l *locator) advance() {
	if l.eof() {
		return
	}
	if l.src[l.pos] == '\n' {
		l.line++
	}
	l.pos++
}

// record notes line for path and for each of its prefixes not seen yet.
func (l *locator) record(path []string, line int) {
	for i := 1; i <= len(path); i++ {
		k := keyName(path[:i])
		if _, ok := l.lines[k]; !ok {
			l.lines[k] = line
		}
	}
}

// skipSpace skips blanks within a line.
func (l *locator) skipSpace() {
	for c := l.peek(); c == ' ' || c == '\t'; c = l.peek() {
		l.pos++
	}
}

// skipBlank skips blanks, line ends and comments.
func (l *locator) skipBlank() {
	for !l.eof() {
		switch l.peek() {
		case ' ', '\t', '\r', '\n':
			l.advance()
		case '#':
			for !l.eof() && l.peek() != '\n' {
				l.pos++
			}
		default:
			return
		}
	}
}

func (l *locator) document() {
	var table []string
	for {
		l.skipBlank()
		if l.eof() {
			return
		}
		start, line := l.pos, l.line
		switch {
		case l.has("[["):
			l.pos += 2
			key := l.key()
			l.skipSpace()
			if l.has("]]") {
				l.pos += 2
			}
			prefix := l.resolve(key, false)
			name := keyName(prefix)
			l.arrays[name]++
			table = appendPath(prefix, index(l.arrays[name]-1))
			l.record(table, line)
		case l.peek() == '[':
			l.pos++
			key := l.key()
			l.skipSpace()
			if l.peek() == ']' {
				l.pos++
			}
			table = l.resolve(key, true)
			l.record(table, line)
		default:
			l.keyValue(table, 0)
		}
		if l.pos == start {
			l.advance()
		}
	}
}

// resolve turns a header's key into a key path, inserting the current
// element of every array of tables it passes through (and of its last
// segment too when last is true).
func (l *locator) resolve(key []string, last bool) []string {
	var out []string
	for i, s := range key {
		out = append(out, s)
		if i == len(key)-1 && !last {
			break
		}
		if n, ok := l.arrays[keyName(out)]; ok {
			out = append(out, index(n-1))
		}
	}
	return out
}

// key reads a possibly dotted key.
func (l *locator) key() []string {
	var segs []string
	for {
		l.skipSpace()
		seg, ok := l.simpleKey()
		if !ok {
			return segs
		}
		segs = append(segs, seg)
		l.skipSpace()
		if l.peek() != '.' {
			return segs
		}
		l.pos++
	}
}

func (l *locator) simpleKey() (string, bool) {
	switch c := l.peek(); {
	case c == '"':
		return l.basicString(), true
	case c == '\'':
		return l.literalString(), true
	case isBare(c):
		start := l.pos
		for isBare(l.peek()) {
			l.pos++
		}
		return l.src[start:l.pos], true
	}
	return "", false
}

func isBare(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// keyValue reads key = value below table.
func (l *locator) keyValue(table []string, depth int) {
	line := l.line
	key := l.key()
	if len(key) == 0 {
		return
	}
	path := appendPath(table, key...)
	l.record(path, line)
	l.skipSpace()
	if l.peek() != '=' {
		return
	}
	l.pos++
	l.skipSpace()
	l.value(path, depth)
}

func (l *locator) value(path []string, depth int) {
	switch c := l.peek(); {
	case l.has(`"""`):
		l.multiline(`"""`)
	case c == '"':
		l.basicString()
	case l.has("'''"):
		l.multiline("'''")
	case c == '\'':
		l.literalString()
	case (c == '[' || c == '{') && depth > maxRecordDepth:
		l.skipNested()
	case c == '[':
		l.array(path, depth)
	case c == '{':
		l.inlineTable(path, depth)
	default: // number, boolean, date or time (which may hold a space)
		for !l.eof() {
			switch l.peek() {
			case ',', ']', '}', '#', '\r', '\n':
				return
			}
			l.pos++
		}
	}
}

func (l *locator) array(path []string, depth int) {
	l.pos++ // [
	for i := 0; ; {
		l.skipBlank()
		switch l.peek() {
		case 0:
			if l.eof() {
				return
			}
		case ']':
			l.pos++
			return
		case ',':
			l.pos++
			continue
		}
		elem := appendPath(path, index(i))
		l.record(elem, l.line)
		start := l.pos
		l.value(elem, depth+1)
		if l.pos == start {
			l.advance()
		}
		i++
	}
}

func (l *locator) inlineTable(path []string, depth int) {
	l.pos++ // {
	for {
		l.skipBlank()
		switch l.peek() {
		case 0:
			if l.eof() {
				return
			}
		case '}':
			l.pos++
			return
		case ',':
			l.pos++
			continue
		}
		start := l.pos
		l.keyValue(path, depth+1)
		if l.pos == start {
			l.advance()
		}
	}
}

// skipNested skips a deeply nested array or inline table without recursion.
func (l *locator) skipNested() {
	depth := 0
	for !l.eof() {
		switch c := l.peek(); {
		case l.has(`"""`):
			l.multiline(`"""`)
		case c == '"':
			l.basicString()
		case l.has("'''"):
			l.multiline("'''")
		case c == '\'':
			l.literalString()
		case c == '#':
			for !l.eof() && l.peek() != '\n' {
				l.pos++
			}
		case c == '[' || c == '{':
			depth++
			l.pos++
		case c == ']' || c == '}':
			depth--
			l.pos++
			if depth <= 0 {
				return
			}
		default:
			l.advance()
		}
	}
}

// basicString reads a "..." string and returns its value.
func (l *locator) basicString() string {
	l.pos++ // "
	var b strings.Builder
	for !l.eof() {
		c := l.peek()
		switch c {
		case '"':
			l.pos++
			return b.String()
		case '\n':
			return b.String() // not valid TOML; stop at the line end
		case '\\':
			l.pos++
			l.escape(&b)
			continue
		}
		b.WriteByte(c)
		l.pos++
	}
	return b.String()
}

// escape decodes the escape sequence after a backslash.
func (l *locator) escape(b *strings.Builder) {
	if l.eof() {
		return
	}
	c := l.peek()
	l.pos++
	hex := func(n int) {
		if l.pos+n > len(l.src) {
			l.pos = len(l.src)
			return
		}
		r, err := strconv.ParseUint(l.src[l.pos:l.pos+n], 16, 32)
		l.pos += n
		if err != nil || !utf8.ValidRune(rune(r)) {
			b.WriteRune(utf8.RuneError)
			return
		}
		b.WriteRune(rune(r))
	}
	switch c {
	case 'b':
		b.WriteByte('\b')
	case 't':
		b.WriteByte('\t')
	case 'n':
		b.WriteByte('\n')
	case 'f':
		b.WriteByte('\f')
	case 'r':
		b.WriteByte('\r')
	case 'e':
		b.WriteByte(0x1b)
	case 'x':
		hex(2)
	case 'u':
		hex(4)
	case 'U':
		hex(8)
	default: // \" \\ and anything else stand for themselves
		b.WriteByte(c)
	}
}

// literalString reads a '...' string and returns its value.
func (l *locator) literalString() string {
	l.pos++ // '
	start := l.pos
	for !l.eof() {
		switch l.peek() {
		case '\'':
			s := l.src[start:l.pos]
			l.pos++
			return s
		case '\n':
			return l.src[start:l.pos]
		}
		l.pos++
	}
	return l.src[start:]
}

// multiline skips a multi-line string (basic or literal), counting its
// lines.
func (l *locator) multiline(delim string) {
	escapes := delim[0] == '"'
	l.pos += len(delim)
	for !l.eof() {
		if escapes && l.peek() == '\\' {
			l.pos++
			l.advance() // the escaped byte, maybe a line end
			continue
		}
		if l.has(delim) {
			l.pos += len(delim)
			// Up to two more quotes belong to the content before the delimiter.
			for i := 0; i < 2 && l.peek() == delim[0]; i++ {
				l.pos++
			}
			return
		}
		l.advance()
	}
}
