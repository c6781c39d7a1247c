package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/gantry-os/gantry/internal/settings/applier"
	"github.com/gantry-os/gantry/internal/update/updateapi"
	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/model"
)

// httpError is an error with the status code it maps to.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &httpError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

// handlerFunc returns a status and a body to encode as JSON (nil body: none).
type handlerFunc func(w http.ResponseWriter, r *http.Request) (int, any, error)

func (s *Server) handle(f handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, body, err := f(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		switch b := body.(type) {
		case nil:
			w.WriteHeader(status)
		case rawJSON:
			writeJSON(w, status, b)
		default:
			buf, err := json.Marshal(b)
			if err != nil {
				s.writeError(w, r, fmt.Errorf("encode response: %w", err))
				return
			}
			writeJSON(w, status, buf)
		}
	}
}

// writeJSON writes a JSON body with its length, so that large bodies are not
// sent chunked.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// rawJSON is a response body that is already encoded.
type rawJSON []byte

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	var he *httpError
	var mbe *http.MaxBytesError
	var ve model.ValidationError
	var ke *datastore.KeyError
	switch {
	case errors.As(err, &he):
		status = he.status
	case errors.As(err, &mbe):
		status = http.StatusRequestEntityTooLarge
		err = fmt.Errorf("request body is larger than %d bytes", mbe.Limit)
	case errors.As(err, &ve), errors.As(err, &ke):
		status = http.StatusBadRequest
	case errors.Is(err, datastore.ErrNothingToCommit):
		status = http.StatusUnprocessableEntity
		err = errors.New("Tried to commit with no pending changes")
	}
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "uri", r.URL.RequestURI(), "error", err)
	} else {
		s.log.Debug("request refused", "method", r.Method, "uri", r.URL.RequestURI(), "status", status, "error", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, err.Error()+"\n")
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handle(s.getModel))
	mux.HandleFunc("GET /settings", s.handle(s.getSettings))
	mux.HandleFunc("PATCH /settings", s.handle(s.patchSettings))
	mux.HandleFunc("PATCH /settings/keypair", s.handle(s.patchKeypair))
	mux.HandleFunc("GET /tx", s.handle(s.getTx))
	mux.HandleFunc("DELETE /tx", s.handle(s.deleteTx))
	mux.HandleFunc("GET /tx/list", s.handle(s.listTx))
	mux.HandleFunc("POST /tx/commit", s.handle(s.commit))
	mux.HandleFunc("POST /tx/apply", s.handle(s.apply))
	mux.HandleFunc("POST /tx/commit_and_apply", s.handle(s.commitAndApply))
	mux.HandleFunc("GET /tx/plan", s.handle(s.plan))
	mux.HandleFunc("GET /os", s.handle(s.getOS))
	mux.HandleFunc("GET /metadata/affected-services", s.handle(s.metadataForKeys("affected-services")))
	mux.HandleFunc("GET /metadata/templates", s.handle(s.metadataForKeys("template")))
	mux.HandleFunc("GET /metadata/setting-generators", s.handle(s.settingGenerators))
	mux.HandleFunc("GET /services", s.handle(s.getSection("services")))
	mux.HandleFunc("GET /configuration-files", s.handle(s.getSection("configuration-files")))
	mux.HandleFunc("GET /updates/status", s.handle(s.updateStatus))
	mux.HandleFunc("POST /actions/refresh-updates", s.handle(s.updateAction(updateapi.CmdRefresh)))
	mux.HandleFunc("POST /actions/prepare-update", s.handle(s.updateAction(updateapi.CmdPrepare)))
	mux.HandleFunc("POST /actions/activate-update", s.handle(s.updateAction(updateapi.CmdActivate)))
	mux.HandleFunc("POST /actions/deactivate-update", s.handle(s.updateAction(updateapi.CmdDeactivate)))
	mux.HandleFunc("POST /actions/reboot", s.handle(s.reboot))
	mux.HandleFunc("GET /containers/status", s.handle(s.containerStatus))
	mux.HandleFunc("GET /exec", s.execSession)
	return mux
}

// listParam reads a comma-separated query parameter; present but empty is
// an error.
func listParam(r *http.Request, name string) ([]string, bool, error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return nil, false, nil
	}
	v := q.Get(name)
	if v == "" {
		return nil, true, badRequest("Input '%s' cannot be empty", name)
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, true, badRequest("Input '%s' cannot be empty", name)
	}
	return out, true, nil
}

func prefixParam(r *http.Request) (string, bool, error) {
	q := r.URL.Query()
	if !q.Has("prefix") {
		return "", false, nil
	}
	p := q.Get("prefix")
	if p == "" {
		return "", true, badRequest("Input 'prefix' cannot be empty")
	}
	return p, true, nil
}

func txParam(r *http.Request) (string, error) {
	q := r.URL.Query()
	if !q.Has("tx") {
		return DefaultTx, nil
	}
	tx := q.Get("tx")
	if err := datastore.CheckTxName(tx); err != nil {
		return "", badRequest("Invalid input 'tx': %v", err)
	}
	return tx, nil
}

func parseKeys(names []string) ([]datastore.Key, error) {
	keys := make([]datastore.Key, 0, len(names))
	for _, n := range names {
		k, err := datastore.ParseKey(datastore.DataKey, n)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// settingsTree reads keys with the given name prefix from a section and
// returns them nested below "settings".
func (s *Server) sectionTree(r *http.Request, c datastore.Section, prefix string) (datastore.Tree, error) {
	pairs, err := s.cfg.Store.GetPrefix(r.Context(), c, prefix)
	if err != nil {
		return nil, err
	}
	return datastore.Unflatten(pairs, 1)
}

func (s *Server) getSettings(w http.ResponseWriter, r *http.Request) (int, any, error) {
	keys, hasKeys, err := listParam(r, "keys")
	if err != nil {
		return 0, nil, err
	}
	prefix, hasPrefix, err := prefixParam(r)
	if err != nil {
		return 0, nil, err
	}
	switch {
	case hasKeys:
		parsed, err := parseKeys(keys)
		if err != nil {
			return 0, nil, err
		}
		all, err := s.cfg.Store.GetPrefix(r.Context(), datastore.Live, "settings.")
		if err != nil {
			return 0, nil, err
		}
		selected := map[string]json.RawMessage{}
		for name, v := range all {
			k, err := datastore.ParseKey(datastore.DataKey, name)
			if err != nil {
				return 0, nil, fmt.Errorf("corrupt key in datastore: %w", err)
			}
			for _, want := range parsed {
				if k.StartsWithSegments(want) {
					selected[name] = v
				}
			}
		}
		tree, err := datastore.Unflatten(selected, 1)
		return http.StatusOK, tree, err
	case hasPrefix:
		if !strings.HasPrefix(prefix, "settings") {
			prefix = "settings." + prefix
		}
		tree, err := s.sectionTree(r, datastore.Live, prefix)
		return http.StatusOK, tree, err
	default:
		body, err := s.cached("settings", func() ([]byte, error) {
			tree, err := s.sectionTree(r, datastore.Live, "settings.")
			if err != nil {
				return nil, err
			}
			return tree.AppendJSON(nil)
		})
		return http.StatusOK, rawJSON(body), err
	}
}

func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, badRequest("request body is empty")
	}
	return body, nil
}

func (s *Server) patchSettings(w http.ResponseWriter, r *http.Request) (int, any, error) {
	return s.stage(r, s.cfg.Model.SettingsPairs)
}

func (s *Server) patchKeypair(w http.ResponseWriter, r *http.Request) (int, any, error) {
	return s.stage(r, func(body []byte) (map[datastore.Key]json.RawMessage, error) {
		var req struct {
			RequestPayload []string `json:"request_payload"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, badRequest(`Invalid keypair request: want {"request_payload": ["key=value", ...]}: %v`, err)
		}
		if len(req.RequestPayload) == 0 {
			return nil, badRequest("Invalid keypair request: request_payload is empty")
		}
		return s.cfg.Model.KeypairPairs(req.RequestPayload)
	})
}

// stage validates a PATCH body into keys with toPairs and writes them, all
// or nothing, into the request's transaction.
func (s *Server) stage(r *http.Request, toPairs func([]byte) (map[datastore.Key]json.RawMessage, error)) (int, any, error) {
	tx, err := txParam(r)
	if err != nil {
		return 0, nil, err
	}
	body, err := readBody(r)
	if err != nil {
		return 0, nil, err
	}
	pairs, err := toPairs(body)
	var he *httpError
	switch {
	case errors.As(err, &he):
		return 0, nil, err
	case err != nil:
		return 0, nil, badRequest("Invalid settings: %v", err)
	}
	if err := s.cfg.Store.Set(r.Context(), datastore.Pending(tx), pairs); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

func (s *Server) getTx(w http.ResponseWriter, r *http.Request) (int, any, error) {
	tx, err := txParam(r)
	if err != nil {
		return 0, nil, err
	}
	tree, err := s.sectionTree(r, datastore.Pending(tx), "settings.")
	return http.StatusOK, tree, err
}

func (s *Server) deleteTx(w http.ResponseWriter, r *http.Request) (int, any, error) {
	tx, err := txParam(r)
	if err != nil {
		return 0, nil, err
	}
	removed, err := s.cfg.Store.DeleteTx(r.Context(), tx)
	return http.StatusOK, removed, err
}

func (s *Server) listTx(w http.ResponseWriter, r *http.Request) (int, any, error) {
	txs, err := s.cfg.Store.Transactions(r.Context())
	if txs == nil {
		txs = []string{}
	}
	return http.StatusOK, txs, err
}

func (s *Server) commit(w http.ResponseWriter, r *http.Request) (int, any, error) {
	tx, err := txParam(r)
	if err != nil {
		return 0, nil, err
	}
	keys, err := s.cfg.Store.Commit(r.Context(), tx)
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("committed transaction", "tx", tx, "keys", len(keys))
	return http.StatusOK, keys, nil
}

func (s *Server) apply(w http.ResponseWriter, r *http.Request) (int, any, error) {
	keys, hasKeys, err := listParam(r, "keys")
	if err != nil {
		return 0, nil, err
	}
	if hasKeys {
		if _, err := parseKeys(keys); err != nil {
			return 0, nil, err
		}
	}
	if err := s.runApplier(r, keys); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

func (s *Server) commitAndApply(w http.ResponseWriter, r *http.Request) (int, any, error) {
	status, keys, err := s.commit(w, r)
	if err != nil {
		return 0, nil, err
	}
	if err := s.runApplier(r, keys.([]string)); err != nil {
		committed, _ := json.Marshal(keys)
		return 0, nil, fmt.Errorf("settings were committed, but applying them failed:\n%w\ncommitted: %s", err, committed)
	}
	return status, keys, nil
}

// runApplier renders and restarts for keys (everything when nil). Failures
// of individual files and services come back as one error listing each.
func (s *Server) runApplier(r *http.Request, keys []string) error {
	if s.cfg.Applier == nil {
		s.log.Info("no settings applier configured; nothing applied", "keys", len(keys))
		return nil
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	ctx := context.WithoutCancel(r.Context()) // a client hanging up must not leave a half-applied change
	plan, err := s.cfg.Applier.Plan(ctx, storeSource{s: s}, keys)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	rep, err := s.cfg.Applier.Apply(ctx, plan)
	if err != nil {
		s.log.Error("apply failed", "error", err)
		return err
	}
	s.log.Info("applied settings", "keys", len(keys), "files", len(rep.Written), "restarts", len(rep.Restarts))
	return nil
}

// plan serves GET /tx/plan: what committing the transaction would render and
// restart, with a diff of every file, without changing anything.
func (s *Server) plan(w http.ResponseWriter, r *http.Request) (int, any, error) {
	tx, err := txParam(r)
	if err != nil {
		return 0, nil, err
	}
	pending, err := s.cfg.Store.GetPrefix(r.Context(), datastore.Pending(tx), "settings.")
	if err != nil {
		return 0, nil, err
	}
	keys := make([]string, 0, len(pending))
	for k := range pending {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if s.cfg.Applier == nil {
		return http.StatusOK, &applier.Plan{Keys: keys, Services: []applier.ServicePlan{}, Files: []applier.FilePlan{}}, nil
	}
	plan, err := s.cfg.Applier.Plan(r.Context(), storeSource{s: s, overlay: tx}, keys)
	if err != nil {
		return 0, nil, err
	}
	if plan.Services == nil {
		plan.Services = []applier.ServicePlan{}
	}
	if plan.Files == nil {
		plan.Files = []applier.FilePlan{}
	}
	return http.StatusOK, plan, nil
}

// getModel serves GET /: every section, optionally filtered by prefix.
func (s *Server) getModel(w http.ResponseWriter, r *http.Request) (int, any, error) {
	prefix, hasPrefix, err := prefixParam(r)
	if err != nil {
		return 0, nil, err
	}
	out := map[string]any{}
	for _, section := range []string{"settings", "services", "configuration-files"} {
		filter, ok := sectionFilter(section+".", prefix, hasPrefix)
		if !ok {
			continue
		}
		tree, err := s.sectionTree(r, datastore.Live, filter)
		if err != nil {
			return 0, nil, err
		}
		if len(tree) == 0 {
			if !hasPrefix {
				return 0, nil, notFound("Found no '%s' in datastore", section)
			}
			continue
		}
		out[section] = tree
	}
	if filter, ok := sectionFilter("os.", prefix, hasPrefix); ok {
		if fields := s.osFields(strings.TrimPrefix(filter, "os.")); len(fields) > 0 {
			out["os"] = fields
		}
	}
	return http.StatusOK, out, nil
}

// sectionFilter applies Bottlerocket's prefix rule to one section: the
// whole section when the section's prefix starts with the query (so
// "se" and "settings" both select settings), the query itself when it
// starts with the section's prefix, and nothing otherwise.
func sectionFilter(sectionPrefix, prefix string, hasPrefix bool) (string, bool) {
	switch {
	case !hasPrefix || strings.HasPrefix(sectionPrefix, prefix):
		return sectionPrefix, true
	case strings.HasPrefix(prefix, sectionPrefix):
		return prefix, true
	}
	return "", false
}

func (s *Server) osFields(prefix string) map[string]string {
	out := map[string]string{}
	for k, v := range s.cfg.Release.Fields() {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

func (s *Server) getOS(w http.ResponseWriter, r *http.Request) (int, any, error) {
	prefix, hasPrefix, err := prefixParam(r)
	if err != nil {
		return 0, nil, err
	}
	if hasPrefix {
		if !strings.HasPrefix(prefix, "os") {
			prefix = "os." + prefix
		}
		filter, ok := sectionFilter("os.", prefix, true)
		if !ok {
			return http.StatusOK, map[string]string{}, nil
		}
		return http.StatusOK, s.osFields(strings.TrimPrefix(filter, "os.")), nil
	}
	return http.StatusOK, s.cfg.Release, nil
}

func (s *Server) metadataForKeys(md string) handlerFunc {
	mdKey := datastore.MustKey(datastore.MetaKey, md)
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		names, has, err := listParam(r, "keys")
		if err != nil {
			return 0, nil, err
		}
		if !has {
			return 0, nil, badRequest("Missing required input 'keys'")
		}
		keys, err := parseKeys(names)
		if err != nil {
			return 0, nil, err
		}
		out := map[string]json.RawMessage{}
		for _, k := range keys {
			v, err := s.cfg.Store.GetMetadata(r.Context(), mdKey, k)
			if err != nil {
				return 0, nil, err
			}
			if v != nil {
				out[k.Name()] = v
			}
		}
		return http.StatusOK, out, nil
	}
}

func (s *Server) settingGenerators(w http.ResponseWriter, r *http.Request) (int, any, error) {
	gens, err := s.cfg.Store.ListMetadata(r.Context(), datastore.MustKey(datastore.MetaKey, "setting-generator"))
	return http.StatusOK, gens, err
}

// getSection serves /services and /configuration-files.
func (s *Server) getSection(section string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		names, hasNames, err := listParam(r, "names")
		if err != nil {
			return 0, nil, err
		}
		prefix, hasPrefix, err := prefixParam(r)
		if err != nil {
			return 0, nil, err
		}
		filter := section + "."
		if hasPrefix && !hasNames {
			if strings.HasPrefix(prefix, section) {
				filter = prefix
			} else {
				filter = section + "." + prefix
			}
		}
		tree, err := s.sectionTree(r, datastore.Live, filter)
		if err != nil {
			return 0, nil, err
		}
		if !hasNames {
			return http.StatusOK, tree, nil
		}
		out := datastore.Tree{}
		sort.Strings(names)
		for _, n := range names {
			v, ok := tree[n]
			if !ok {
				return 0, nil, notFound("Found no '%s.%s' in datastore", section, n)
			}
			out[n] = v
		}
		return http.StatusOK, out, nil
	}
}
