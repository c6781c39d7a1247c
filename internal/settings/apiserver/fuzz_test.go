package apiserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/model"
)

func fuzzServer(f *testing.F) (*Server, *datastore.Store) {
	store, err := datastore.Open(context.Background(), f.TempDir(), datastore.OpenOptions{Create: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	m, _ := model.ForVariant("metal-k8s-1.37")
	return New(Config{Store: store, Model: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}), store
}

// checkNoHalfWrite fails unless a refused request left the transaction empty.
func checkNoHalfWrite(t *testing.T, srv *Server, store *datastore.Store, code int, body string) {
	t.Helper()
	ctx := context.Background()
	pending, _ := store.GetPrefix(ctx, datastore.Pending("fuzz"), "")
	switch code {
	case http.StatusNoContent:
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		if len(pending) != 0 {
			t.Fatalf("refused body %q left %d pending keys", body, len(pending))
		}
	default:
		t.Fatalf("body %q got status %d; want 204, 400 or 413", body, code)
	}
	store.DeleteTx(ctx, "fuzz")
}

// FuzzPatchSettings sends arbitrary bodies to PATCH /settings: the answer is
// 204 or a 4xx, never a 5xx, and a refused body writes nothing.
func FuzzPatchSettings(f *testing.F) {
	for _, s := range []string{`{"motd":"x"}`, `{"kernel":{"sysctl":{"a.b":"1"}}}`, `{"kubernetes":{"node-labels":{"a/b":"c"}}}`,
		`{"host-containers":{"a":{"enabled":true,"source":"x"}}}`, `{"motd":"ok","updates":{"seed":9999}}`, `{`, `null`, `"x"`, `{"a":{"b":null}}`} {
		f.Add(s)
	}
	srv, store := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body string) {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("PATCH", "/settings?tx=fuzz", strings.NewReader(body)))
		checkNoHalfWrite(t, srv, store, rec.Code, body)
	})
}

// FuzzPatchKeypair does the same for PATCH /settings/keypair lines.
func FuzzPatchKeypair(f *testing.F) {
	for _, s := range []string{"motd=x", `kernel.sysctl."vm.x"=1`, "updates.seed=12", "motd", "=", `a."b=c`, "kubernetes.max-pods=-1"} {
		f.Add(s, "motd=ok")
	}
	srv, store := fuzzServer(f)
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		body := `{"request_payload": [` + quote(line1) + `, ` + quote(line2) + `]}`
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("PATCH", "/settings/keypair?tx=fuzz", strings.NewReader(body)))
		checkNoHalfWrite(t, srv, store, rec.Code, body)
	})
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&15])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
