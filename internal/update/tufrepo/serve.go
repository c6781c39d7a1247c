package tufrepo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// Handler serves a repository directory over HTTP as a static web server
// would: /metadata/ (the metadata base URL) and /targets/ (the targets base
// URL). It serves files only: no directory listings, nothing whose name
// starts with a dot (temporary files, the lock). Tests of clients can use
// it with httptest.NewServer; production hosting can be any static server.
func Handler(dir string) http.Handler {
	mux := http.NewServeMux()
	for _, sub := range []string{MetadataDirName, TargetsDirName} {
		prefix := "/" + sub + "/"
		mux.Handle(prefix, http.StripPrefix(prefix, http.FileServer(filesOnly{http.Dir(filepath.Join(dir, sub))})))
	}
	return mux
}

// filesOnly hides directories and dot files.
type filesOnly struct{ fs http.FileSystem }

func (f filesOnly) Open(name string) (http.File, error) {
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") {
			return nil, fs.ErrNotExist
		}
	}
	h, err := f.fs.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := h.Stat()
	if err != nil || st.IsDir() {
		h.Close()
		return nil, fs.ErrNotExist
	}
	return h, nil
}

// Serve serves the repository in dir (Handler) on ln until ctx is done,
// then shuts the server down, letting requests in flight finish for up to
// shutdownGrace. It returns nil after a shutdown that ctx asked for.
func Serve(ctx context.Context, dir string, ln net.Listener) error {
	srv := &http.Server{Handler: Handler(dir), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve repository %s: %w", dir, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve repository %s: %w", dir, err)
	}
	return nil
}

// shutdownGrace is how long Serve lets requests in flight finish.
const shutdownGrace = 5 * time.Second
