// Package sundog owns setting generators: at every boot it runs the
// generator command of each setting that has one and no value yet, and sends
// the results to the launch transaction in one request.
package sundog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/gantry-os/gantry/internal/procgroup"
	"github.com/gantry-os/gantry/pkg/apiclient"
	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/model"
)

// DefaultTimeout bounds each generator, as Bottlerocket's sundog does.
const DefaultTimeout = 360 * time.Second

// Options configure a run.
type Options struct {
	Client  *apiclient.Client
	Tx      string // transaction the results go to
	Timeout time.Duration
	Logger  *slog.Logger
}

// Result says what a run did.
type Result struct {
	Generated map[string]json.RawMessage // key → value sent
	Skipped   []string                   // keys already set or whose generator exited 2
}

// Run runs the generators of unset settings and PATCHes their values.
func Run(ctx context.Context, o Options) (Result, error) {
	res := Result{Generated: map[string]json.RawMessage{}}
	var gens map[string]string
	body, err := o.Client.Raw(ctx, http.MethodGet, "/metadata/setting-generators", nil)
	if err != nil {
		return res, fmt.Errorf("read setting generators: %w", err)
	}
	if err := json.Unmarshal(body, &gens); err != nil {
		return res, fmt.Errorf("setting generators are not key → command strings: %w", err)
	}
	if len(gens) == 0 {
		return res, nil
	}
	populated, settings, err := liveKeys(ctx, o.Client)
	if err != nil {
		return res, err
	}
	env := proxyEnv(settings)
	doc := map[string]any{}
	names := make([]string, 0, len(gens))
	for k := range gens {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		key, err := datastore.ParseKey(datastore.DataKey, name)
		if err != nil {
			return res, fmt.Errorf("generator for invalid key %q: %w", name, err)
		}
		if isPopulated(key, populated) {
			res.Skipped = append(res.Skipped, name)
			continue
		}
		value, skip, err := runGenerator(ctx, gens[name], env, o.Timeout)
		if err != nil {
			return res, fmt.Errorf("generator for %s (%s): %w", name, gens[name], err)
		}
		if skip {
			o.Logger.Info("generator skipped its setting", "key", name)
			res.Skipped = append(res.Skipped, name)
			continue
		}
		segs := key.Segments()
		if len(segs) < 2 || segs[0] != "settings" {
			return res, fmt.Errorf("generator for %s: only settings can be generated", name)
		}
		if err := insert(doc, segs[1:], value); err != nil {
			return res, fmt.Errorf("generator for %s: %w", name, err)
		}
		raw, _ := json.Marshal(value)
		res.Generated[name] = raw
	}
	if len(res.Generated) == 0 {
		return res, nil
	}
	patch, err := json.Marshal(doc)
	if err != nil {
		return res, err
	}
	if _, err := o.Client.Raw(ctx, http.MethodPatch, "/settings?tx="+url.QueryEscape(o.Tx), patch); err != nil {
		return res, fmt.Errorf("send generated settings: %w", err)
	}
	return res, nil
}

// liveKeys returns the populated live settings keys and the settings tree.
func liveKeys(ctx context.Context, c *apiclient.Client) ([]datastore.Key, map[string]any, error) {
	body, err := c.Raw(ctx, http.MethodGet, "/?prefix=settings", nil)
	if err != nil {
		return nil, nil, fmt.Errorf("read live settings: %w", err)
	}
	doc, err := model.DecodeJSON(body)
	if err != nil {
		return nil, nil, err
	}
	settings, _ := doc.(map[string]any)["settings"].(map[string]any)
	pairs, err := datastore.Flatten([]string{"settings"}, settings)
	if err != nil {
		return nil, nil, err
	}
	keys := make([]datastore.Key, 0, len(pairs))
	for k := range pairs {
		keys = append(keys, k)
	}
	return keys, settings, nil
}

// isPopulated reports whether any live key is at or below key: a generator
// for settings.boot is covered by settings.boot.kernel-parameters.
func isPopulated(key datastore.Key, populated []datastore.Key) bool {
	for _, p := range populated {
		if p.StartsWithSegments(key) {
			return true
		}
	}
	return false
}

// runGenerator runs one generator: exit 0 with JSON on stdout gives the
// value, exit 2 skips the setting, anything else is an error.
func runGenerator(ctx context.Context, command string, env []string, timeout time.Duration) (any, bool, error) {
	args, err := SplitCommand(command)
	if err != nil {
		return nil, false, err
	}
	if len(args) == 0 {
		return nil, false, errors.New("empty command")
	}
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	procgroup.Configure(cmd)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return nil, false, fmt.Errorf("timed out after %s", timeout)
	case errors.As(err, &exitErr) && exitErr.ExitCode() == 2:
		return nil, true, nil
	case err != nil:
		return nil, false, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	v, err := model.DecodeJSON(bytes.TrimSpace(stdout.Bytes()))
	if err != nil {
		return nil, false, fmt.Errorf("output is not JSON (%q): %w", strings.TrimSpace(stdout.String()), err)
	}
	return v, false, nil
}

func insert(doc map[string]any, segs []string, v any) error {
	node := doc
	for _, s := range segs[:len(segs)-1] {
		child, ok := node[s].(map[string]any)
		if !ok {
			if _, exists := node[s]; exists {
				return fmt.Errorf("%s is generated both as a value and as a table", s)
			}
			child = map[string]any{}
			node[s] = child
		}
		node = child
	}
	node[segs[len(segs)-1]] = v
	return nil
}

// proxyEnv gives generators the node's proxy, as Bottlerocket's sundog does.
func proxyEnv(settings map[string]any) []string {
	network, _ := settings["network"].(map[string]any)
	proxy, _ := network["https-proxy"].(string)
	if proxy == "" {
		return nil
	}
	no := []string{"localhost", "127.0.0.1"}
	if list, ok := network["no-proxy"].([]any); ok {
		for _, v := range list {
			if s, ok := v.(string); ok {
				no = append(no, s)
			}
		}
	}
	if k8s, ok := settings["kubernetes"].(map[string]any); ok {
		if api, ok := k8s["api-server"].(string); ok {
			if u, err := url.Parse(api); err == nil && u.Hostname() != "" {
				no = append(no, u.Hostname())
			}
		}
		if d, ok := k8s["cluster-domain"].(string); ok {
			no = append(no, "."+d)
		}
	}
	n := strings.Join(no, ",")
	return []string{"https_proxy=" + proxy, "HTTPS_PROXY=" + proxy, "no_proxy=" + n, "NO_PROXY=" + n}
}

// SplitCommand splits a command line the way a shell would for simple
// cases: whitespace separates words, single quotes are literal, double
// quotes allow \" and \\ escapes. There is no expansion of any kind.
func SplitCommand(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}
