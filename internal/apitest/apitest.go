// Package apitest runs a real settings API for tests: the apiserver over a
// fresh datastore on a Unix socket in a test's temporary folder, stopped
// when the test ends. Tests of the packages that talk to the API
// (settings-committer, and the other clients) use it instead of each
// starting their own.
package apitest

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/gantry-os/gantry/internal/settings/apiserver"
	"github.com/gantry-os/gantry/pkg/apiclient"
	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/model"
	"github.com/gantry-os/gantry/pkg/osrelease"
)

// Node is a running API.
type Node struct {
	// Socket is the API's Unix socket.
	Socket string
	// Store is the datastore behind it.
	Store *datastore.Store
	// API is a client on Socket.
	API *apiclient.Client
}

// Start runs the API with the model of variant (version 1.0.0, x86_64)
// until t ends.
func Start(t testing.TB, variant string) *Node {
	t.Helper()
	m, err := model.ForVariant(variant)
	if err != nil {
		t.Fatalf("apitest: %v", err)
	}
	dir := t.TempDir()
	store, err := datastore.Open(context.Background(), dir, datastore.OpenOptions{Create: true})
	if err != nil {
		t.Fatalf("apitest: %v", err)
	}
	socket := filepath.Join(dir, "api.sock")
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := apiserver.Listen(ctx, socket, -1)
	if err != nil {
		cancel()
		store.Close()
		t.Fatalf("apitest: %v", err)
	}
	srv := apiserver.New(apiserver.Config{Store: store, Model: m,
		Release: osrelease.Release{VariantID: variant, VersionID: "1.0.0", Arch: "x86_64"},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil))})
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; store.Close() })
	return &Node{Socket: socket, Store: store, API: apiclient.New(socket)}
}
