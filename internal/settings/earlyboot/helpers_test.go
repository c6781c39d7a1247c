package earlyboot_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	"github.com/gantry-os/gantry/internal/settings/apiserver"
	"github.com/gantry-os/gantry/pkg/apiclient"
	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/model"
	"github.com/gantry-os/gantry/pkg/osrelease"
)

// node is a real apiserver on a Unix socket with an empty datastore, for
// variant metal-dev.
type node struct {
	socket string
	api    *apiclient.Client
	model  *model.Model
}

func startNode(t *testing.T) *node {
	t.Helper()
	dir := t.TempDir()
	store, err := datastore.Open(context.Background(), dir, datastore.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.ForVariant("metal-dev")
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "api.sock")
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := apiserver.Listen(ctx, socket, -1)
	if err != nil {
		t.Fatal(err)
	}
	srv := apiserver.New(apiserver.Config{Store: store, Model: m,
		Release: osrelease.Release{VariantID: "metal-dev", VersionID: "1.0.0", Arch: "x86_64"},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil))})
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; store.Close() })
	return &node{socket: socket, api: apiclient.New(socket), model: m}
}

// launchTx returns the settings staged in gantry-launch, as compact JSON.
func (n *node) launchTx(t *testing.T) string {
	t.Helper()
	return n.get(t, "/tx?tx=gantry-launch")
}

func (n *node) get(t *testing.T, uri string) string {
	t.Helper()
	body, err := n.api.Raw(context.Background(), http.MethodGet, uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	return compact(t, body)
}

func compact(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fwCfgTree makes a sysfs root holding the fw_cfg user-data entry.
func fwCfgTree(t *testing.T, data []byte) string {
	t.Helper()
	root := t.TempDir()
	writeFile(t, root, "firmware/qemu_fw_cfg/by_name/opt/gantry/user-data/raw", data)
	return root
}

type isoOptions struct {
	label     string
	rockRidge bool
	joliet    bool
}

// makeISO creates an ISO 9660 image with go-diskfs holding files at its
// root, and returns its path.
func makeISO(t *testing.T, opts isoOptions, files map[string][]byte) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "config.iso")
	d, err := diskfs.Create(img, 4<<20, diskfs.SectorSizeDefault)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.LogicalBlocksize = 2048
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeISO9660, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	for name, data := range files {
		f, err := fsys.OpenFile("/"+name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	err = fsys.(*iso9660.FileSystem).Finalize(iso9660.FinalizeOptions{
		RockRidge: opts.rockRidge, Joliet: opts.joliet, VolumeIdentifier: opts.label})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// clock is a settable clock shared by an IMDS client and the fake IMDS.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
