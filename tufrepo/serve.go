package tufrepo

import (
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
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
