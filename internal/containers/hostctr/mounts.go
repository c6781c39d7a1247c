package hostctr

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Paths are the host paths a container's mounts come from. DefaultPaths
// are the node's; tests point them elsewhere.
type Paths struct {
	// Local holds host-containers/<name> and bootstrap-containers/<name>.
	Local string
	// APISocket is the settings API's socket, mounted at /run/api.sock.
	APISocket string
	// Apiclient is the apiclient binary, mounted at /usr/local/bin/apiclient.
	Apiclient string
	// OSRelease is mounted at /etc/gantry-release and, for images made for
	// Bottlerocket, /etc/bottlerocket-release.
	OSRelease string
	// Support is the log-bundle folder, mounted at /.bottlerocket/support.
	Support string
	// Kmod is mounted at /usr/local/sbin/modprobe in privileged containers.
	Kmod string
	// Status holds host-ctr's status file of each container.
	Status string
}

// DefaultPaths are the node's paths.
func DefaultPaths() Paths {
	return Paths{
		Local:     "/local",
		APISocket: "/run/api.sock",
		Apiclient: "/usr/bin/apiclient",
		OSRelease: "/etc/os-release",
		Support:   "/var/log/support",
		Kmod:      "/usr/bin/kmod",
		Status:    "/run/host-ctr",
	}
}

// WriteUserData makes the container's persistent directory (0700) and
// writes the decoded user data (base64, as in the settings) into it as
// user-data, or removes a user-data file no longer set.
func (p Paths) WriteUserData(c Container, userData string) error {
	dir := p.PersistentDir(c)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("persistent directory: %w", err)
	}
	file := filepath.Join(dir, "user-data")
	if userData == "" {
		if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("user data: %w", err)
		}
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(userData)
	if err != nil {
		return fmt.Errorf("user-data is not base64: %w", err)
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("user data: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("user data: %w", err)
	}
	return nil
}

// PersistentDir is the container's persistent directory on the host.
func (p Paths) PersistentDir(c Container) string {
	return path.Join(p.Local, c.Kind.StorageDir(), c.Name)
}

// Mounts returns the container's mounts, Bottlerocket's set for its kind:
// every container gets its persistent directory (also as .../current), the
// API socket, apiclient, the release file, the cgroup tree read-only and
// the log-bundle folder; privileged ones (superpowered and bootstrap) also
// get the host's root, kernel modules, firmware, debugfs, /mnt shared back
// to the host and modprobe; bootstrap containers get the container
// runtimes' state shared back too. exists reports whether a host path is
// there: optional sources (such as /var/lib/kubelet on a node without
// Kubernetes) that are missing are left out.
func (p Paths) Mounts(c Container, exists func(string) bool) []specs.Mount {
	storage := "/.bottlerocket/" + c.Kind.StorageDir()
	dir := p.PersistentDir(c)
	ms := []specs.Mount{bind(storage+"/"+c.Name, dir, "rbind", "rw")}
	if c.Name != "current" {
		ms = append(ms, bind(storage+"/current", dir, "rbind", "rw"))
	}
	ms = append(ms,
		bind("/run/api.sock", p.APISocket, "bind", "rw"),
		bind("/usr/local/bin/apiclient", p.Apiclient, "bind", "ro"),
		bind("/etc/gantry-release", p.OSRelease, "bind", "ro"),
		bind("/etc/bottlerocket-release", p.OSRelease, "bind", "ro"),
		specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup2", Source: "cgroup",
			Options: []string{"ro", "nosuid", "noexec", "nodev"}},
	)
	optional := []specs.Mount{bind("/.bottlerocket/support", p.Support, "bind", "ro")}
	if c.privileged() {
		ms = append(ms,
			bind("/.bottlerocket/rootfs", "/", "rbind", "ro"),
			bind("/lib/modules", "/lib/modules", "rbind", "ro"),
			bind("/sys/firmware", "/sys/firmware", "rbind", "rw"),
			bind("/.bottlerocket/rootfs/mnt", "/mnt", "rbind", "rshared", "rw"),
			bind("/usr/local/sbin/modprobe", p.Kmod, "bind", "ro", "exec"),
		)
		optional = append(optional,
			bind("/usr/src/kernels", "/usr/src/kernels", "rbind", "rw"),
			bind("/sys/kernel/debug", "/sys/kernel/debug", "rbind", "rw"),
		)
	}
	if c.Kind == Bootstrap {
		for _, d := range []string{"/var/lib/containerd", "/var/lib/docker", "/var/lib/kubelet"} {
			optional = append(optional, bind("/.bottlerocket/rootfs"+d, d, "rbind", "rshared", "rw"))
		}
	}
	for _, m := range optional {
		if exists(m.Source) {
			ms = append(ms, m)
		}
	}
	return ms
}

// bind is a bind mount; it is private unless the options say otherwise.
func bind(dest, src string, opts ...string) specs.Mount {
	shared := false
	for _, o := range opts {
		if o == "rshared" || o == "shared" {
			shared = true
		}
	}
	if !shared {
		opts = append(opts, "rprivate")
	}
	return specs.Mount{Destination: dest, Type: "bind", Source: src, Options: opts}
}

// PathExists is the exists function for the running node.
func PathExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
