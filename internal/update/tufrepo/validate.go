package tufrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/gantry-os/gantry/internal/update/manifest"
)

// ValidateOptions say which repository to validate and how.
type ValidateOptions struct {
	// Dir is a repository on disk; or give MetadataURL and TargetsURL
	// (http, https or file) of a hosted one.
	Dir                     string
	MetadataURL, TargetsURL string
	// TrustedRoot is the root.json to start from, as the one shipped in an
	// image; default: Dir's 1.root.json, so the whole root chain is checked.
	TrustedRoot string
	// At is the time to check expirations at; zero means now.
	At time.Time
	// HTTPClient fetches http(s) URLs; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
}

// TargetResult is the check of one target.
type TargetResult struct {
	Name   string
	Length int64
	Err    error
}

// Report is what Validate found.
type Report struct {
	Versions map[string]int64
	Expires  map[string]time.Time
	// Targets are every target, sorted by name.
	Targets  []TargetResult
	Manifest *manifest.Manifest
}

// TargetsError lists the targets that failed validation.
type TargetsError struct{ Failed []TargetResult }

func (e *TargetsError) Error() string {
	parts := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		parts[i] = fmt.Sprintf("target %s: %v", f.Name, f.Err)
	}
	return fmt.Sprintf("%d target(s) failed validation: %s", len(e.Failed), strings.Join(parts, "; "))
}

// Validate loads a repository as a client does (go-tuf's updater: the root
// chain from the trusted root, then timestamp, snapshot and targets, with
// signatures, thresholds, versions, lengths, hashes and expirations), then
// fetches every target and checks its length and hash, and checks that
// manifest.json parses and names only targets that exist. It returns the
// report and, if anything is wrong, an error (a *TargetsError when only
// targets are).
func Validate(ctx context.Context, opts ValidateOptions) (*Report, error) {
	metaURL, targetsURL, trusted := opts.MetadataURL, opts.TargetsURL, opts.TrustedRoot
	if opts.Dir != "" {
		if metaURL != "" || targetsURL != "" {
			return nil, fmt.Errorf("validate: give a repository directory or URLs, not both")
		}
		abs, err := filepath.Abs(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("validate: %w", err)
		}
		metaURL = fileURL(filepath.Join(abs, MetadataDirName))
		targetsURL = fileURL(filepath.Join(abs, TargetsDirName))
		if trusted == "" {
			trusted = filepath.Join(abs, MetadataDirName, "1.root.json")
		}
	}
	if metaURL == "" || targetsURL == "" {
		return nil, fmt.Errorf("validate: no repository directory, or no metadata and targets URLs")
	}
	if trusted == "" {
		return nil, fmt.Errorf("validate: no trusted root.json given")
	}
	rootBytes, err := os.ReadFile(trusted)
	if err != nil {
		return nil, fmt.Errorf("validate: trusted root: %w", err)
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	f := &fetcher{ctx: ctx, client: hc}
	tmp, err := os.MkdirTemp("", "gantry-validate-*")
	if err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	defer os.RemoveAll(tmp)

	cfg, err := config.New(withSlash(metaURL), rootBytes)
	if err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	cfg.RemoteTargetsURL = withSlash(targetsURL)
	cfg.Fetcher = f
	cfg.DisableLocalCache = true
	// No local cache, but go-tuf still looks for cached metadata here:
	// an empty directory of our own.
	cfg.LocalMetadataDir = filepath.Join(tmp, "metadata")
	cfg.LocalTargetsDir = filepath.Join(tmp, "targets")
	cfg.PrefixTargetsWithHash = true
	cfg.RootMaxLength, cfg.TimestampMaxLength = manifest.MaxRootBytes, manifest.MaxTimestampBytes
	cfg.SnapshotMaxLength, cfg.TargetsMaxLength = manifest.MaxSnapshotBytes, manifest.MaxTargetsBytes
	up, err := updater.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("validate: trusted root %s: %w", trusted, err)
	}
	if !opts.At.IsZero() {
		up.UnsafeSetRefTime(opts.At.UTC())
	}
	if err := up.Refresh(); err != nil {
		return nil, fmt.Errorf("validate: load repository metadata from %s: %w", metaURL, err)
	}
	tm := up.GetTrustedMetadataSet()
	rep := &Report{
		Versions: map[string]int64{
			RoleRoot: tm.Root.Signed.Version, RoleTimestamp: tm.Timestamp.Signed.Version,
			RoleSnapshot: tm.Snapshot.Signed.Version, RoleTargets: tm.Targets[RoleTargets].Signed.Version,
		},
		Expires: map[string]time.Time{
			RoleRoot: tm.Root.Signed.Expires, RoleTimestamp: tm.Timestamp.Signed.Expires,
			RoleSnapshot: tm.Snapshot.Signed.Expires, RoleTargets: tm.Targets[RoleTargets].Signed.Expires,
		},
	}
	targets := up.GetTopLevelTargets()
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	sort.Strings(names)
	var failed []TargetResult
	var manifestBody []byte
	for _, n := range names {
		tf := targets[n]
		res := TargetResult{Name: n, Length: tf.Length}
		var body io.Writer
		buf := &bytes.Buffer{}
		if n == ManifestTarget && tf.Length <= manifest.MaxManifestBytes {
			body = buf
		}
		res.Err = f.verifyTarget(targetsURL, n, tf, body)
		if res.Err == nil && body != nil {
			manifestBody = buf.Bytes()
		}
		if errors.Is(res.Err, context.Canceled) || errors.Is(res.Err, context.DeadlineExceeded) {
			return rep, fmt.Errorf("validate: %w", res.Err)
		}
		rep.Targets = append(rep.Targets, res)
		if res.Err != nil {
			failed = append(failed, res)
		}
	}
	if targets[ManifestTarget] == nil {
		return rep, fmt.Errorf("validate: the repository has no %s target", ManifestTarget)
	}
	if len(failed) > 0 {
		return rep, &TargetsError{Failed: failed}
	}
	if rep.Manifest, err = manifest.Parse(manifestBody); err != nil {
		return rep, fmt.Errorf("validate: %s: %w", ManifestTarget, err)
	}
	if err := checkManifestTargets(rep.Manifest, targets); err != nil {
		return rep, fmt.Errorf("validate: %s: %w", ManifestTarget, err)
	}
	return rep, nil
}

// checkManifestTargets requires every image and migration the manifest
// names to be a target.
func checkManifestTargets(mf *manifest.Manifest, targets map[string]*metadata.TargetFiles) error {
	var missing []string
	for _, u := range mf.Updates {
		for _, img := range []struct{ part, name string }{{"boot", u.Images.Boot}, {"root", u.Images.Root}, {"hash", u.Images.Hash}} {
			if targets[img.name] == nil {
				missing = append(missing, fmt.Sprintf("%s %s %s %s image %q", u.Variant, u.Arch, u.Version, img.part, img.name))
			}
		}
	}
	for t, names := range mf.Migrations {
		for _, n := range names {
			if targets[n] == nil {
				missing = append(missing, fmt.Sprintf("migration %q of %s", n, t))
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("names what is not a target: %s", strings.Join(missing, ", "))
	}
	return nil
}

func fileURL(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

func withSlash(u string) string { return strings.TrimRight(u, "/") + "/" }

// fetcher is go-tuf's Fetcher for file:// and http(s):// URLs, bound to a
// context. A missing file is a 404, which ends the root chain.
type fetcher struct {
	ctx    context.Context
	client *http.Client
}

func (f *fetcher) open(rawURL string) (io.ReadCloser, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "file":
		fh, err := os.Open(filepath.FromSlash(u.Path))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &metadata.ErrDownloadHTTP{StatusCode: http.StatusNotFound, URL: rawURL}
		}
		return fh, err
	case "http", "https":
		req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return nil, err
		}
		res, err := f.client.Do(req)
		if err != nil {
			return nil, err
		}
		if res.StatusCode != http.StatusOK {
			res.Body.Close()
			return nil, &metadata.ErrDownloadHTTP{StatusCode: res.StatusCode, URL: rawURL}
		}
		return res.Body, nil
	}
	return nil, fmt.Errorf("unsupported URL scheme in %s", rawURL)
}

// DownloadFile implements go-tuf's fetcher.Fetcher.
func (f *fetcher) DownloadFile(rawURL string, maxLength int64, _ time.Duration) ([]byte, error) {
	if err := f.ctx.Err(); err != nil {
		return nil, err
	}
	rc, err := f.open(rawURL)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(ctxReader{f.ctx, rc}, maxLength+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", rawURL, err)
	}
	if int64(len(b)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is longer than %d bytes", rawURL, maxLength)}
	}
	return b, nil
}

// verifyTarget streams a target from <targets>/<sha256>.<name> and checks
// its length and hash; body, if not nil, receives its bytes.
func (f *fetcher) verifyTarget(targetsURL, name string, tf *metadata.TargetFiles, body io.Writer) error {
	h, ok := tf.Hashes["sha256"]
	if !ok {
		return fmt.Errorf("no sha256 hash in the targets metadata")
	}
	rc, err := f.open(withSlash(targetsURL) + url.PathEscape(StoredTargetName(name, h)))
	if err != nil {
		var he *metadata.ErrDownloadHTTP
		if errors.As(err, &he) && he.StatusCode == http.StatusNotFound {
			return fmt.Errorf("missing: %s not found", StoredTargetName(name, h))
		}
		return err
	}
	defer rc.Close()
	var r io.Reader = rc
	if body != nil {
		r = io.TeeReader(rc, body)
	}
	return verifyStream(f.ctx, r, tf)
}
