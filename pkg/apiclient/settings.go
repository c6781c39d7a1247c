package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
)

// Get reads each prefix with GET /?prefix=P and deep-merges the results;
// no prefixes means "os." and "settings.".
func (c *Client) Get(ctx context.Context, prefixes []string) (map[string]any, error) {
	if len(prefixes) == 0 {
		prefixes = []string{"os.", "settings."}
	}
	merged := map[string]any{}
	for _, p := range prefixes {
		body, err := c.Raw(ctx, http.MethodGet, "/?prefix="+url.QueryEscape(p), nil)
		if err != nil {
			return nil, err
		}
		var doc map[string]any
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, fmt.Errorf("response to prefix %s is not a JSON object: %w", p, err)
		}
		deepMerge(merged, doc)
	}
	return merged, nil
}

func deepMerge(dst, src map[string]any) {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				deepMerge(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
}

// SetKeypairs sets key=value pairs in a new transaction and commits and
// applies it; the model decides each value's type.
func (c *Client) SetKeypairs(ctx context.Context, pairs []string) ([]string, error) {
	body, err := json.Marshal(map[string][]string{"request_payload": pairs})
	if err != nil {
		return nil, err
	}
	return c.patchAndCommit(ctx, "apiclient-set", "/settings/keypair", [][]byte{body})
}

// SetJSON sets a JSON settings object (an optional top-level "settings"
// wrapper is removed) and commits and applies it.
func (c *Client) SetJSON(ctx context.Context, doc []byte) ([]string, error) {
	body, err := UnwrapSettings(doc, "the --json value")
	if err != nil {
		return nil, err
	}
	return c.patchAndCommit(ctx, "apiclient-set", "/settings", [][]byte{body})
}

func UnwrapSettings(doc []byte, what string) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(doc, &obj); err != nil {
		return nil, fmt.Errorf("%s must be a JSON object: %w", what, err)
	}
	if inner, ok := obj["settings"]; ok && len(obj) == 1 {
		return inner, nil
	}
	return doc, nil
}

// patchAndCommit PATCHes each body into one new transaction, in order, then
// commits and applies it. On any failure the transaction is deleted, so
// nothing is left half-staged.
func (c *Client) patchAndCommit(ctx context.Context, txPrefix, route string, bodies [][]byte) ([]string, error) {
	tx, err := c.stage(ctx, txPrefix, route, bodies)
	if err != nil {
		return nil, err
	}
	q := "?tx=" + url.QueryEscape(tx)
	out, err := c.Raw(ctx, http.MethodPost, "/tx/commit_and_apply"+q, nil)
	if err != nil {
		c.Raw(context.WithoutCancel(ctx), http.MethodDelete, "/tx"+q, nil)
		return nil, err
	}
	var keys []string
	if err := json.Unmarshal(out, &keys); err != nil {
		return nil, fmt.Errorf("commit response is not a list of keys: %w", err)
	}
	return keys, nil
}

// stage PATCHes bodies into a new transaction and returns its name; on
// failure the transaction is deleted.
func (c *Client) stage(ctx context.Context, txPrefix, route string, bodies [][]byte) (string, error) {
	tx := TxName(txPrefix)
	q := "?tx=" + url.QueryEscape(tx)
	for _, b := range bodies {
		if _, err := c.Raw(ctx, http.MethodPatch, route+q, b); err != nil {
			c.Raw(context.WithoutCancel(ctx), http.MethodDelete, "/tx"+q, nil)
			return "", err
		}
	}
	return tx, nil
}

// Plan is the API's answer to GET /tx/plan.
type Plan struct {
	Keys     []string `json:"keys"`
	Services []struct {
		Name            string   `json:"name"`
		RestartCommands []string `json:"restart-commands"`
	} `json:"services"`
	Files []struct {
		Name    string `json:"name"`
		Path    string `json:"path"`
		Changed bool   `json:"changed"`
		Diff    string `json:"diff"`
		Error   string `json:"error"`
	} `json:"files"`
}

// DryRun stages bodies in a scratch transaction, asks the API what
// committing it would change, and deletes the transaction: nothing changes.
func (c *Client) DryRun(ctx context.Context, route string, bodies [][]byte) (*Plan, error) {
	tx, err := c.stage(ctx, "apiclient-dry-run", route, bodies)
	if err != nil {
		return nil, err
	}
	q := "?tx=" + url.QueryEscape(tx)
	defer c.Raw(context.WithoutCancel(ctx), http.MethodDelete, "/tx"+q, nil)
	body, err := c.Raw(ctx, http.MethodGet, "/tx/plan"+q, nil)
	if err != nil {
		return nil, err
	}
	var p Plan
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("plan response: %w", err)
	}
	return &p, nil
}

// WritePlan prints a plan for people: the settings, each file's diff or
// error, and the restarts.
func WritePlan(w io.Writer, p *Plan) {
	fmt.Fprintf(w, "Settings that would change: %s\n", strings.Join(p.Keys, ", "))
	for _, f := range p.Files {
		switch {
		case f.Error != "":
			fmt.Fprintf(w, "\n%s: WOULD FAIL: %s\n", f.Path, f.Error)
		case f.Changed:
			fmt.Fprintf(w, "\n%s", f.Diff)
		default:
			fmt.Fprintf(w, "\n%s: unchanged\n", f.Path)
		}
	}
	for _, s := range p.Services {
		for _, cmd := range s.RestartCommands {
			fmt.Fprintf(w, "\nwould restart %s: %s", s.Name, cmd)
		}
	}
	fmt.Fprintln(w)
}

// Document is one settings source for Apply.
type Document struct {
	Name string // where it came from, for messages
	Data []byte
}

// Apply sends each document's settings, in order (later ones win), in one
// transaction, then commits and applies it.
func (c *Client) Apply(ctx context.Context, docs []Document) ([]string, error) {
	bodies, err := DocumentBodies(docs)
	if err != nil {
		return nil, err
	}
	return c.patchAndCommit(ctx, "apiclient-apply", "/settings", bodies)
}

// DocumentBodies turns settings documents into PATCH /settings bodies.
func DocumentBodies(docs []Document) ([][]byte, error) {
	var bodies [][]byte
	for _, d := range docs {
		b, err := SettingsJSON(d)
		if err != nil {
			return nil, err
		}
		bodies = append(bodies, b)
	}
	if len(bodies) == 0 {
		return nil, fmt.Errorf("no settings documents given")
	}
	return bodies, nil
}

// SettingsJSON parses a document as TOML, or else JSON, and returns the JSON
// of its top-level settings table.
func SettingsJSON(d Document) ([]byte, error) {
	var doc map[string]any
	_, tomlErr := toml.Decode(string(d.Data), &doc)
	if tomlErr != nil {
		doc = nil
		if jsonErr := json.Unmarshal(d.Data, &doc); jsonErr != nil {
			return nil, fmt.Errorf("%s is neither TOML (%v) nor JSON (%v)", d.Name, tomlErr, jsonErr)
		}
	}
	settings, ok := doc["settings"]
	if !ok {
		return nil, fmt.Errorf("%s has no top-level \"settings\"", d.Name)
	}
	b, err := json.Marshal(settings)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	return b, nil
}

// Fetch reads a settings document from a URI: "-" for standard input,
// file:// or a plain path for a file, http(s):// for a GET that must
// return 2xx.
func Fetch(ctx context.Context, uri string, stdin io.Reader, hc *http.Client) (Document, error) {
	switch {
	case uri == "-":
		b, err := io.ReadAll(stdin)
		return Document{Name: "standard input", Data: b}, err
	case strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://"):
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
		if err != nil {
			return Document{}, fmt.Errorf("fetch %s: %w", uri, err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return Document{}, fmt.Errorf("fetch %s: %w", uri, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if err != nil {
			return Document{}, fmt.Errorf("fetch %s: %w", uri, err)
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return Document{}, fmt.Errorf("fetch %s: status %d: %s", uri, resp.StatusCode, bytes.TrimSpace(b))
		}
		return Document{Name: uri, Data: b}, nil
	case strings.Contains(uri, "://") && !strings.HasPrefix(uri, "file://"):
		return Document{}, fmt.Errorf("%s: unsupported scheme (use file://, http://, https://, a path or -)", uri)
	default:
		path := strings.TrimPrefix(uri, "file://")
		b, err := os.ReadFile(path)
		if err != nil {
			return Document{}, fmt.Errorf("read %s: %w", uri, err)
		}
		return Document{Name: uri, Data: b}, nil
	}
}

// CommitTx commits a transaction; a transaction with nothing pending is not
// an error (committed is false), which is what settings-committer needs at
// every boot.
func (c *Client) CommitTx(ctx context.Context, tx string) (keys []string, committed bool, err error) {
	body, err := c.Raw(ctx, http.MethodPost, "/tx/commit?tx="+url.QueryEscape(tx), nil)
	var se *StatusError
	if errors.As(err, &se) && se.Code == http.StatusUnprocessableEntity {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if err := json.Unmarshal(body, &keys); err != nil {
		return nil, false, fmt.Errorf("commit response is not a list of keys: %w", err)
	}
	return keys, true, nil
}
