package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/pkg/version"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gantry-os/gantry/internal/update/tufrepo"
)

// GuestHostAddr is the host's loopback as the guest sees it through QEMU's
// user network (its gateway).
const GuestHostAddr = "10.0.2.2"

// Files of an image build that the update repository publishes.
const (
	BuildSummary   = "build.json"
	BuildBootImage = "boot.img"
	BuildRootImage = "root.img"
	BuildHashImage = "hash.img"
)

// Files of the run directory that belong to the update repository.
const (
	// RunRepoDir is gantry run's default update repository: a development
	// repository (tufrepo.EnsureDev), its key in keys/.
	RunRepoDir = "repo"
	// RunRepoPort holds the port the repository was served on, so that the
	// next run of the same disk serves it where the node's settings (from
	// its first boot's user data) look.
	RunRepoPort = "repo.port"
	// RunUserData is the user data passed when the repository's URLs were
	// added to the user data given.
	RunUserData = "user-data.toml"
)

// UpdateRepo is the local update repository a node is served
// (Options.UpdateRepo), as Start set it up.
type UpdateRepo struct {
	// Dir is the repository; KeyPath its key, which signs every role.
	Dir, KeyPath string
	// Port is where it is served on the host's 127.0.0.1; Host and Guest
	// are its base URLs from the host and from the guest (10.0.2.2).
	Port        int
	Host, Guest RepoURLs
	// Release is the build's release: variant, arch and version.
	Variant, Arch string
	Version       version.Semver
	// Published is set when Start published the release (the repository
	// did not offer the build's images yet).
	Published bool
	// Created is set when Start made the repository: an image built before
	// does not trust it (gantry build --root-json <Dir>/metadata/root.json).
	Created bool
	// UserData says whether the user data passed names this repository.
	UserData UserDataRepo
	// PortChanged is set when the port differs from the one a previous run
	// of this run directory used, so a node whose disk is kept does not
	// look here.
	PortChanged bool
}

// RootPath is the repository's root.json, the trust anchor to build
// images with.
func (u *UpdateRepo) RootPath() string {
	return filepath.Join(u.Dir, tufrepo.MetadataDirName, "root.json")
}

// buildInfo is the part of an image build's build.json
// (imagebuild.Summary) that names its release. It is read here rather than
// through imagebuild so that booting a node does not depend on the image
// builder's code.
type buildInfo struct {
	Variant string `json:"variant"`
	Arch    string `json:"arch"`
	Version string `json:"version"`
}

// readBuildRelease returns the release an image build's output directory
// holds: build.json's variant, arch and version, and its partition images.
func readBuildRelease(buildDir string) (tufrepo.Release, error) {
	p := filepath.Join(buildDir, BuildSummary)
	b, err := os.ReadFile(p)
	if err != nil {
		return tufrepo.Release{}, fmt.Errorf("the build's release: %w", err)
	}
	var bi buildInfo
	if err := json.Unmarshal(b, &bi); err != nil {
		return tufrepo.Release{}, fmt.Errorf("the build's release: %s: %w", p, err)
	}
	if bi.Variant == "" || bi.Arch == "" {
		return tufrepo.Release{}, fmt.Errorf("the build's release: %s names no variant or arch", p)
	}
	v, err := version.Parse(bi.Version)
	if err != nil {
		return tufrepo.Release{}, fmt.Errorf("the build's release: %s: version: %w", p, err)
	}
	return tufrepo.Release{Variant: bi.Variant, Arch: bi.Arch, Version: v,
		Boot: filepath.Join(buildDir, BuildBootImage), Root: filepath.Join(buildDir, BuildRootImage),
		Hash: filepath.Join(buildDir, BuildHashImage)}, nil
}

// repoServer is the update repository served for as long as the node runs.
type repoServer struct {
	info     UpdateRepo
	userData string // the user data to pass ("": none)
	cancel   context.CancelFunc
	done     chan struct{}
}

// close stops serving and waits for the server to end.
func (s *repoServer) close() {
	if s == nil {
		return
	}
	s.cancel()
	<-s.done
}

// startUpdateRepo sets up o.UpdateRepo for the node: the development
// repository (key and root made once), the build's release published when
// the repository does not offer it yet, the HTTP server on 127.0.0.1, and
// the user data with the repository's URLs. diskKept tells whether the
// node boots a disk kept from a previous run, which reads no user data.
func startUpdateRepo(ctx context.Context, o Options, diskKept bool) (*repoServer, error) {
	log := o.Logger
	rel, err := readBuildRelease(o.BuildDir)
	if err != nil {
		return nil, fmt.Errorf("update repository: %w", err)
	}
	dev, err := tufrepo.EnsureDev(ctx, o.UpdateRepo, nil)
	if err != nil {
		return nil, fmt.Errorf("update repository: %w", err)
	}
	info := UpdateRepo{Dir: dev.Dir(), KeyPath: dev.KeyPath(), Variant: rel.Variant, Arch: rel.Arch, Version: rel.Version, Created: dev.Created}
	if dev.Created {
		log.Warn("made a new update repository; the image, built before it, does not trust it (gantry build --root-json)",
			"repo", dev.Dir(), "root_json", info.RootPath())
	}
	if dev.Refreshed {
		log.Info("re-signed the update repository's metadata, which was about to expire", "repo", dev.Dir())
	}
	pub, err := dev.EnsureRelease(ctx, rel)
	if err != nil {
		return nil, fmt.Errorf("update repository: publish the build's release: %w", err)
	}
	info.Published = pub != nil
	log.Info("update repository", "repo", dev.Dir(), "release", rel.Variant+" "+rel.Arch+" "+rel.Version.String(), "published_now", info.Published)

	ln, changed, err := listenRepo(o, diskKept)
	if err != nil {
		return nil, fmt.Errorf("update repository: %w", err)
	}
	info.Port, info.PortChanged = ln.Addr().(*net.TCPAddr).Port, changed
	base := func(host string) RepoURLs {
		b := "http://" + net.JoinHostPort(host, strconv.Itoa(info.Port)) + "/"
		return RepoURLs{Metadata: b + tufrepo.MetadataDirName + "/", Targets: b + tufrepo.TargetsDirName + "/"}
	}
	info.Host, info.Guest = base("127.0.0.1"), base(GuestHostAddr)

	s := &repoServer{info: info}
	if s.userData, s.info.UserData, err = repoUserData(o, info.Guest); err != nil {
		ln.Close()
		return nil, fmt.Errorf("update repository: %w", err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		if err := tufrepo.Serve(sctx, dev.Dir(), ln); err != nil {
			log.Error("update repository server failed", "error", err)
		}
	}()
	return s, nil
}

// listenRepo listens on 127.0.0.1 for the update repository: at
// Options.UpdateRepoPort, else where this run directory's repository was
// before (listenKept).
func listenRepo(o Options, diskKept bool) (net.Listener, bool, error) {
	return listenKept(o, filepath.Join(o.RunDir, RunRepoPort), o.UpdateRepoPort, diskKept, "update repository")
}

// listenKept listens on 127.0.0.1 at port want, else at the port recorded
// in portFile (a previous run's), else at a free one, and records the port.
// changed tells that a port was recorded before and this one differs. A
// port recorded before that is taken now is an error when the disk is kept
// (its settings, from the first boot's user data, name that port), else a
// free one is used. what names the server in messages.
func listenKept(o Options, portFile string, want int, diskKept bool, what string) (ln net.Listener, changed bool, err error) {
	saved := 0
	if b, err := os.ReadFile(portFile); err == nil {
		saved, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("read %s: %w", portFile, err)
	}
	port := want
	if port == 0 {
		port = saved
	}
	ln, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil && want == 0 && saved != 0 {
		if diskKept {
			return nil, false, fmt.Errorf("the node's settings name its %s at %s:%d (its first boot's user data), "+
				"and 127.0.0.1:%d is taken: free it, or start over with --fresh: %w", what, GuestHostAddr, saved, saved, err)
		}
		o.Logger.Info("the previous port is taken; a new disk gets a new one", "server", what, "port", saved)
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return nil, false, fmt.Errorf("listen: %w", err)
	}
	got := ln.Addr().(*net.TCPAddr).Port
	if err := os.WriteFile(portFile, []byte(strconv.Itoa(got)+"\n"), 0o644); err != nil {
		ln.Close()
		return nil, false, fmt.Errorf("record the port: %w", err)
	}
	changed = saved != 0 && saved != got
	if changed && diskKept {
		o.Logger.Warn("moved to another port; the node's settings, from its first boot, still name the old one",
			"server", what, "old", saved, "new", got)
	}
	return ln, changed, nil
}

// repoUserData returns the user data to pass, with the repository's URLs
// added unless it names a repository, and what was done.
func repoUserData(o Options, urls RepoURLs) (string, UserDataRepo, error) {
	if o.UserData == "" {
		return "", UserDataRepoNone, nil
	}
	data, err := os.ReadFile(o.UserData)
	if err != nil {
		return "", "", fmt.Errorf("user data: %w", err)
	}
	out, what, err := AddRepoURLs(o.UserData, data, urls)
	if err != nil {
		return "", "", err
	}
	if what != UserDataRepoAdded {
		o.Logger.Info("the user data names its own update repository; passing it as it is", "user_data", o.UserData)
		return o.UserData, what, nil
	}
	p := filepath.Join(o.RunDir, RunUserData)
	if err := os.WriteFile(p, out, 0o644); err != nil {
		return "", "", fmt.Errorf("user data: %w", err)
	}
	return p, what, nil
}
