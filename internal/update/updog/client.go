// Package updog owns the node side of image-based updates: trusting the
// update repository through TUF (go-tuf/v2, anchored at the root.json
// shipped in the image), reading its manifest, choosing the update the node
// should take, caching the migrations it needs, and streaming its images
// into the inactive partition set, which is marked valid only after every
// byte was verified.
package updog

import (
	"context"
	"fmt"
	"github.com/gantry-os/gantry/pkg/version"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/gantry-os/gantry/internal/update/manifest"
	"github.com/gantry-os/gantry/pkg/osrelease"
)

// ManifestTarget is the name of the manifest in the repository.
const ManifestTarget = "manifest.json"

// Config is what updog needs to know; settings.updates supplies most of it.
type Config struct {
	MetadataBaseURL string
	TargetsBaseURL  string
	Seed            uint32
	VersionLock     string
	IgnoreWaves     bool
	// TrustedRoot is the root.json shipped in the image: the trust anchor.
	TrustedRoot string
	// MetadataDir caches the TUF metadata (the migrator reads it offline).
	MetadataDir string
	// MigrationsDir caches the migrations a chosen update needs.
	MigrationsDir string
	// Release is the running OS (variant, arch, version).
	Release    osrelease.Release
	HTTPClient *http.Client
	// Proxy is settings.network's proxy (ProxySettings.Apply); nil
	// connects directly. Used when HTTPClient is nil.
	Proxy func(*http.Request) (*url.URL, error)
	Now   func() time.Time
}

// Client is a refreshed view of the update repository.
type Client struct {
	cfg      Config
	up       *updater.Updater
	Manifest *manifest.Manifest
	running  version.Semver
}

// Open refreshes the repository's metadata through TUF (root chain,
// timestamp, snapshot, targets: signatures, thresholds, versions,
// expirations, length caps) and reads its manifest.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = cfg.Proxy
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: t}
	}
	running, err := version.Parse(cfg.Release.VersionID)
	if err != nil {
		return nil, fmt.Errorf("running version: %w", err)
	}
	root, err := os.ReadFile(cfg.TrustedRoot)
	if err != nil {
		return nil, fmt.Errorf("read trusted root: %w", err)
	}
	if cfg.MetadataDir == "" {
		return nil, fmt.Errorf("no metadata cache directory")
	}
	if err := os.MkdirAll(cfg.MetadataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create metadata cache: %w", err)
	}
	// The trusted root of the image is the anchor every time: a cached
	// root.json newer than it is fine (it was reached through the chain),
	// but the client never starts from an unverified file.
	if err := seedRoot(cfg.MetadataDir, root); err != nil {
		return nil, err
	}
	tc, err := config.New(strings.TrimRight(cfg.MetadataBaseURL, "/")+"/", root)
	if err != nil {
		return nil, fmt.Errorf("TUF config: %w", err)
	}
	tc.LocalMetadataDir = cfg.MetadataDir
	tc.LocalTargetsDir = filepath.Join(cfg.MetadataDir, "targets")
	tc.RemoteTargetsURL = strings.TrimRight(cfg.TargetsBaseURL, "/") + "/"
	tc.PrefixTargetsWithHash = true
	tc.RootMaxLength, tc.TimestampMaxLength = manifest.MaxRootBytes, manifest.MaxTimestampBytes
	tc.SnapshotMaxLength, tc.TargetsMaxLength = manifest.MaxSnapshotBytes, manifest.MaxTargetsBytes
	if err := tc.SetDefaultFetcherHTTPClient(cfg.HTTPClient); err != nil {
		return nil, err
	}
	if err := tc.SetDefaultFetcherRetry(200*time.Millisecond, 3); err != nil {
		return nil, err
	}
	up, err := updater.New(tc)
	if err != nil {
		return nil, fmt.Errorf("TUF client: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := up.Refresh(); err != nil {
		return nil, fmt.Errorf("refresh repository metadata from %s: %w", cfg.MetadataBaseURL, err)
	}
	c := &Client{cfg: cfg, up: up, running: running}
	body, err := c.fetchSmallTarget(ctx, ManifestTarget, manifest.MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	if c.Manifest, err = manifest.Parse(body); err != nil {
		return nil, err
	}
	return c, nil
}

// seedRoot makes sure the metadata cache holds a root.json; an existing
// one is kept, because updater.New verifies it against the trusted root.
func seedRoot(dir string, root []byte) error {
	p := filepath.Join(dir, "root.json")
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.WriteFile(p, root, 0o644); err != nil {
		return fmt.Errorf("seed metadata cache: %w", err)
	}
	return nil
}

// fetchSmallTarget downloads a target through TUF into memory.
func (c *Client) fetchSmallTarget(ctx context.Context, name string, max int64) ([]byte, error) {
	ti, err := c.up.GetTargetInfo(name)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", name, err)
	}
	if ti.Length > max {
		return nil, fmt.Errorf("target %s is %d bytes, more than the %d allowed", name, ti.Length, max)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := filepath.Join(c.cfg.MetadataDir, "targets")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	_, body, err := c.up.DownloadTarget(ti, filepath.Join(dir, name), "")
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", name, err)
	}
	return body, nil
}

// Query is the node's question to the manifest.
func (c *Client) Query(image *version.Semver, ignoreWaves bool) manifest.Query {
	return manifest.Query{
		Variant: c.cfg.Release.VariantID, Arch: c.cfg.Release.Arch, Running: c.running, Seed: c.cfg.Seed,
		VersionLock: c.cfg.VersionLock, IgnoreWaves: c.cfg.IgnoreWaves || ignoreWaves, Image: image, Now: c.cfg.Now(),
	}
}

// Choose returns the update the node should take, or nil.
func (c *Client) Choose(image *version.Semver, ignoreWaves bool) (*manifest.Update, error) {
	return c.Manifest.Choose(c.Query(image, ignoreWaves))
}

// Applicable lists every update the node may take, newest first.
func (c *Client) Applicable(ignoreWaves bool) []manifest.Update {
	return c.Manifest.Applicable(c.Query(nil, ignoreWaves))
}

// CheckTarget refuses an update for another variant or architecture.
func (c *Client) CheckTarget(u *manifest.Update) error {
	if u.Variant != c.cfg.Release.VariantID {
		return fmt.Errorf("update %s is for variant %s, but this node runs %s", u.Version, u.Variant, c.cfg.Release.VariantID)
	}
	if u.Arch != c.cfg.Release.Arch {
		return fmt.Errorf("update %s is for %s, but this node is %s", u.Version, u.Arch, c.cfg.Release.Arch)
	}
	return nil
}

// CacheMigrations downloads, through TUF, every migration between the
// running version and u's, and the manifest, into the migrations cache, so
// the migrator can run them offline after the reboot.
func (c *Client) CacheMigrations(ctx context.Context, u *manifest.Update) ([]string, error) {
	names, err := c.Manifest.FindMigrations(c.running, u.Version)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.cfg.MigrationsDir, 0o755); err != nil {
		return nil, fmt.Errorf("create migrations cache: %w", err)
	}
	for _, name := range append(append([]string(nil), names...), ManifestTarget) {
		ti, err := c.up.GetTargetInfo(name)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dst := filepath.Join(c.cfg.MigrationsDir, name)
		if _, _, err := c.up.DownloadTarget(ti, dst, ""); err != nil {
			return nil, fmt.Errorf("download migration %s: %w", name, err)
		}
	}
	return names, nil
}
