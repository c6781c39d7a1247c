package qemu

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gantry-os/gantry/internal/devtools/registry"
)

// Files of the run directory that belong to the local registry.
const (
	// RunRegistryDir holds the registry's storage, configuration and log.
	RunRegistryDir = "registry"
	// RunRegistryPort holds the port the registry was served on, which the
	// node's settings.container-registry (from its first boot's user
	// data) names.
	RunRegistryPort = "registry.port"
	// MirroredRegistry is the registry the variants' default host
	// container sources name, and the one the local registry mirrors.
	MirroredRegistry = "ghcr.io"
	// PublishPrefix is the repository prefix the images are published
	// under: ghcr.io/gantry-os/NAME:TAG is HOST:PORT/gantry-os/NAME:TAG.
	PublishPrefix = "gantry-os"
)

// LocalRegistry is the registry a node is served (Options.Containers), as
// Start set it up.
type LocalRegistry struct {
	// Host is 127.0.0.1:PORT; Guest 10.0.2.2:PORT, the node's name for it.
	Host, Guest string
	Port        int
	// Log is the registry's log file.
	Log string
	// Images are what Start published.
	Images []registry.Published
	// Mirror tells whether the user data passed points the node's ghcr.io
	// mirror here: UserDataRepoAdded, UserDataRepoOwn (it has its own
	// mirror), UserDataRepoNone (no user data).
	Mirror UserDataRepo
	// PortChanged is set when the port differs from a previous run's.
	PortChanged bool
}

// registryServer is the local registry, run for as long as the node runs.
type registryServer struct {
	info     LocalRegistry
	userData string
	reg      *registry.Registry
}

func (s *registryServer) close() {
	if s != nil {
		s.reg.Stop()
	}
}

// startRegistry runs the local registry for o.Containers: on the port this
// run directory used before when it can, the layouts published, and the
// mirror added to o.UserData.
func startRegistry(ctx context.Context, o Options, diskKept bool) (_ *registryServer, err error) {
	ln, changed, err := listenKept(o, filepath.Join(o.RunDir, RunRegistryPort), o.RegistryPort, diskKept, "registry")
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // the registry listens itself
	reg, err := registry.Start(ctx, registry.Options{Dir: filepath.Join(o.RunDir, RunRegistryDir), Port: port})
	if err != nil {
		return nil, err
	}
	s := &registryServer{reg: reg, info: LocalRegistry{Host: reg.Host, Guest: net.JoinHostPort(GuestHostAddr, strconv.Itoa(port)),
		Port: port, Log: reg.Log, PortChanged: changed}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.info.Images, err = registry.PublishLayouts(ctx, o.Containers, reg.Host, PublishPrefix); err != nil {
		return nil, fmt.Errorf("registry: publish %s: %w", o.Containers, err)
	}
	for _, img := range s.info.Images {
		o.Logger.Info("published a container image", "ref", img.Ref, "digest", img.Digest)
	}
	if len(s.info.Images) == 0 {
		o.Logger.Warn("no container images to publish (gantry container build admin; make run builds them)", "dir", o.Containers)
	}
	s.userData, s.info.Mirror = o.UserData, UserDataRepoNone
	if o.UserData == "" {
		return s, nil
	}
	data, err := os.ReadFile(o.UserData)
	if err != nil {
		return nil, fmt.Errorf("user data: %w", err)
	}
	out, what, err := AddMirror(o.UserData, data, MirroredRegistry, "http://"+s.info.Guest)
	if err != nil {
		return nil, err
	}
	s.info.Mirror = what
	if what != UserDataRepoAdded {
		o.Logger.Info("the user data has its own mirror for the registry; passing it as it is", "registry", MirroredRegistry)
		return s, nil
	}
	p := filepath.Join(o.RunDir, RunUserData)
	if err := os.WriteFile(p, out, 0o644); err != nil {
		return nil, fmt.Errorf("user data: %w", err)
	}
	s.userData = p
	return s, nil
}
