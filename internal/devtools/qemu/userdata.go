package qemu

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"

	"github.com/BurntSushi/toml"

	"github.com/gantry-os/gantry/internal/settings/userdata"
)

// The settings that name a node's update repository.
const (
	MetadataURLKey = "metadata-base-url"
	TargetsURLKey  = "targets-base-url"
)

// RepoURLs are an update repository's two base URLs, as a node's
// settings.updates names them.
type RepoURLs struct {
	Metadata, Targets string
}

// UserDataRepo is what AddRepoURLs did to the user data.
type UserDataRepo string

const (
	// UserDataRepoAdded: the user data named no repository, and now names
	// the local one.
	UserDataRepoAdded UserDataRepo = "added"
	// UserDataRepoOwn: the user data names a repository (either URL) and
	// is passed as it is.
	UserDataRepoOwn UserDataRepo = "own"
	// UserDataRepoNone: there is no user data, so none is passed and the
	// node is not told of the repository.
	UserDataRepoNone UserDataRepo = "none"
)

// addedComment heads what AddRepoURLs writes into user data.
const addedComment = "# Added by gantry run: its local update repository (--no-update-repo leaves it out)."

// updatesHeader matches a [settings.updates] table header on its own line.
var updatesHeader = regexp.MustCompile(`(?m)^[ \t]*\[[ \t]*settings[ \t]*\.[ \t]*updates[ \t]*\][ \t]*(#.*)?$`)

// AddRepoURLs returns user data (TOML, optionally gzip-compressed) that
// names urls as its update repository, unless it names one already: when
// settings.updates sets metadata-base-url or targets-base-url, data is
// returned as it is, with UserDataRepoOwn. Otherwise the result is plain
// TOML with the two settings added: under the [settings.updates] header
// when the text has one, else in a [settings.updates] table at the end, so
// the user's text and comments are kept; a document where neither is
// valid TOML (the table defined inline or by dotted keys) is encoded anew
// from its parsed content, without its comments. Every result is parsed
// again and must hold the original settings plus the two URLs.
func AddRepoURLs(source string, data []byte, urls RepoURLs) ([]byte, UserDataRepo, error) {
	doc, err := userdata.Parse(source, data)
	if err != nil {
		return nil, "", fmt.Errorf("user data: %w", err)
	}
	updates, _ := doc.Settings["updates"].(map[string]any)
	if _, ok := updates[MetadataURLKey]; ok {
		return data, UserDataRepoOwn, nil
	}
	if _, ok := updates[TargetsURLKey]; ok {
		return data, UserDataRepoOwn, nil
	}
	plain, err := plainUserData(data)
	if err != nil {
		return nil, "", fmt.Errorf("user data %s: %w", source, err)
	}
	want := withRepoURLs(doc.Settings, urls)
	lines := fmt.Sprintf("%s = %q\n%s = %q\n", MetadataURLKey, urls.Metadata, TargetsURLKey, urls.Targets)
	var b bytes.Buffer
	if loc := updatesHeader.FindIndex(plain); loc != nil {
		b.Write(plain[:loc[1]])
		b.WriteString("\n" + addedComment + "\n" + lines)
		rest := plain[loc[1]:]
		if len(rest) > 0 && rest[0] == '\n' {
			rest = rest[1:]
		}
		b.Write(rest)
	} else {
		b.Write(plain)
		if len(plain) > 0 && !bytes.HasSuffix(plain, []byte("\n")) {
			b.WriteByte('\n')
		}
		b.WriteString("\n" + addedComment + "\n[settings.updates]\n" + lines)
	}
	textErr := sameSettings(source, b.Bytes(), want)
	if textErr == nil {
		return b.Bytes(), UserDataRepoAdded, nil
	}
	enc, err := reencode(plain, urls)
	if err != nil {
		return nil, "", fmt.Errorf("user data %s: add the update repository: %w", source, err)
	}
	if err := sameSettings(source, enc, want); err != nil {
		return nil, "", fmt.Errorf("user data %s: add the update repository: %w (adding them to the text: %v)", source, err, textErr)
	}
	return enc, UserDataRepoAdded, nil
}

// plainUserData decompresses gzip user data (userdata.Parse has checked
// it already, limits included).
func plainUserData(data []byte) ([]byte, error) {
	if !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		return data, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	plain, err := io.ReadAll(io.LimitReader(zr, userdata.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return plain, nil
}

// withRepoURLs is settings (not changed) with updates' two URLs set.
func withRepoURLs(settings map[string]any, urls RepoURLs) map[string]any {
	out := maps.Clone(settings)
	if out == nil {
		out = map[string]any{}
	}
	updates := map[string]any{}
	if u, ok := out["updates"].(map[string]any); ok {
		updates = maps.Clone(u)
	}
	updates[MetadataURLKey] = urls.Metadata
	updates[TargetsURLKey] = urls.Targets
	out["updates"] = updates
	return out
}

// sameSettings parses data as user data and requires exactly want.
func sameSettings(source string, data []byte, want map[string]any) error {
	doc, err := userdata.Parse(source, data)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(doc.Settings, want) {
		return fmt.Errorf("the settings changed beyond the two URLs")
	}
	return nil
}

// reencode decodes the TOML document, sets the two URLs and encodes it.
func reencode(plain []byte, urls RepoURLs) ([]byte, error) {
	top := map[string]any{}
	if _, err := toml.Decode(string(plain), &top); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	settings, _ := top["settings"].(map[string]any)
	if settings == nil {
		settings = map[string]any{}
	}
	updates, _ := settings["updates"].(map[string]any)
	if updates == nil {
		updates = map[string]any{}
	}
	updates[MetadataURLKey] = urls.Metadata
	updates[TargetsURLKey] = urls.Targets
	settings["updates"] = updates
	top["settings"] = settings
	var b bytes.Buffer
	b.WriteString("# Encoded by gantry run from the user data given (its comments are dropped), with its\n" +
		"# local update repository's URLs added (--no-update-repo leaves them out).\n")
	if err := toml.NewEncoder(&b).Encode(top); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return b.Bytes(), nil
}

// mirrorComment heads what AddMirror writes into user data.
const mirrorComment = "# Added by gantry run: its local registry mirrors the host containers' registry (--no-registry leaves it out)."

// AddMirror returns user data (TOML, optionally gzip-compressed) with a
// settings.container-registry mirror for registry at endpoint, unless it
// has a mirror for registry or for "*" already: then data is returned as it
// is, with UserDataRepoOwn. The mirror is appended as a
// [[settings.container-registry.mirrors]] table, so the user's text and
// comments are kept; a document where that is not valid TOML (mirrors
// given as an inline array) is encoded anew from its parsed content. Every
// result is parsed again and must hold the original settings plus the
// mirror.
func AddMirror(source string, data []byte, registry, endpoint string) ([]byte, UserDataRepo, error) {
	doc, err := userdata.Parse(source, data)
	if err != nil {
		return nil, "", fmt.Errorf("user data: %w", err)
	}
	cr, _ := doc.Settings["container-registry"].(map[string]any)
	mirrors := mirrorList(cr["mirrors"])
	for _, m := range mirrors {
		if r, _ := m["registry"].(string); r == registry || r == "*" {
			return data, UserDataRepoOwn, nil
		}
	}
	plain, err := plainUserData(data)
	if err != nil {
		return nil, "", fmt.Errorf("user data %s: %w", source, err)
	}
	entry := map[string]any{"registry": registry, "endpoint": []any{endpoint}}
	want := maps.Clone(doc.Settings)
	if want == nil {
		want = map[string]any{}
	}
	wantCR := maps.Clone(cr)
	if wantCR == nil {
		wantCR = map[string]any{}
	}
	wantCR["mirrors"] = append(mirrorsAsAny(mirrors), entry)
	want["container-registry"] = wantCR

	var b bytes.Buffer
	b.Write(plain)
	if len(plain) > 0 && !bytes.HasSuffix(plain, []byte("\n")) {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "\n%s\n[[settings.container-registry.mirrors]]\nregistry = %q\nendpoint = [%q]\n", mirrorComment, registry, endpoint)
	textErr := sameMirrors(source, b.Bytes(), want)
	if textErr == nil {
		return b.Bytes(), UserDataRepoAdded, nil
	}
	top := map[string]any{}
	if _, err := toml.Decode(string(plain), &top); err != nil {
		return nil, "", fmt.Errorf("user data %s: add the mirror: decode: %w", source, err)
	}
	settings, _ := top["settings"].(map[string]any)
	if settings == nil {
		settings = map[string]any{}
	}
	settings["container-registry"] = wantCR
	top["settings"] = settings
	var enc bytes.Buffer
	enc.WriteString("# Encoded by gantry run from the user data given (its comments are dropped), with its\n" +
		"# local registry added as a mirror (--no-registry leaves it out).\n")
	if err := toml.NewEncoder(&enc).Encode(top); err != nil {
		return nil, "", fmt.Errorf("user data %s: add the mirror: encode: %w", source, err)
	}
	if err := sameMirrors(source, enc.Bytes(), want); err != nil {
		return nil, "", fmt.Errorf("user data %s: add the mirror: %w (adding it to the text: %v)", source, err, textErr)
	}
	return enc.Bytes(), UserDataRepoAdded, nil
}

// mirrorList is settings.container-registry.mirrors as TOML decoded it
// (an array of tables, or an inline array of tables).
func mirrorList(v any) []map[string]any {
	var out []map[string]any
	switch l := v.(type) {
	case []map[string]any:
		out = l
	case []any:
		for _, e := range l {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

func mirrorsAsAny(l []map[string]any) []any {
	out := make([]any, 0, len(l)+1)
	for _, m := range l {
		out = append(out, m)
	}
	return out
}

// sameMirrors parses data as user data and requires want, comparing the
// mirror lists by content whatever slice type TOML decoded them to.
func sameMirrors(source string, data []byte, want map[string]any) error {
	doc, err := userdata.Parse(source, data)
	if err != nil {
		return err
	}
	norm := func(s map[string]any) map[string]any {
		s = maps.Clone(s)
		if cr, ok := s["container-registry"].(map[string]any); ok {
			cr = maps.Clone(cr)
			cr["mirrors"] = mirrorsAsAny(mirrorList(cr["mirrors"]))
			for _, m := range cr["mirrors"].([]any) {
				mm := m.(map[string]any)
				if e, ok := mm["endpoint"].([]string); ok {
					l := make([]any, len(e))
					for i := range e {
						l[i] = e[i]
					}
					mm["endpoint"] = l
				}
			}
			s["container-registry"] = cr
		}
		return s
	}
	if !reflect.DeepEqual(norm(doc.Settings), norm(want)) {
		return fmt.Errorf("the settings changed beyond the mirror")
	}
	return nil
}
