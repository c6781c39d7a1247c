package hostctr

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// spec builds the container's spec the way Run does, without an image.
func spec(t *testing.T, c Container, env map[string]string) *oci.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), Namespace)
	exists := func(p string) bool { return p == "/var/lib/containerd" || p == "/var/log/support" }
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: c.ID()}, DefaultPaths().SpecOpts(c, exists, getenv)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mountOf(s *oci.Spec, dest string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dest {
			return &s.Mounts[i]
		}
	}
	return nil
}

func hasNamespace(s *oci.Spec, ns specs.LinuxNamespaceType) bool {
	return slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == ns })
}

func TestSpecByKind(t *testing.T) {
	hostOnly := []string{"/.bottlerocket/host-containers/admin", "/.bottlerocket/host-containers/current", "/run/api.sock",
		"/usr/local/bin/apiclient", "/etc/bottlerocket-release", "/etc/gantry-release", "/sys/fs/cgroup", "/.bottlerocket/support"}
	privileged := []string{"/.bottlerocket/rootfs", "/lib/modules", "/sys/firmware", "/.bottlerocket/rootfs/mnt", "/usr/local/sbin/modprobe"}
	for _, tc := range []struct {
		name       string
		c          Container
		mounts     []string
		noMounts   []string
		hostPID    bool
		allCaps    bool
		addedCaps  []string
		seccomp    bool
		allDevices bool
		propagate  string
	}{
		{name: "host", c: Container{Name: "admin", Kind: Host, Source: "x"},
			mounts: hostOnly, noMounts: append(privileged, "/.bottlerocket/rootfs/var/lib/containerd"), seccomp: true},
		{name: "superpowered", c: Container{Name: "admin", Kind: Host, Source: "x", Superpowered: true},
			mounts: append(hostOnly, privileged...), noMounts: []string{"/.bottlerocket/rootfs/var/lib/containerd", "/usr/src/kernels"},
			hostPID: true, allCaps: true, allDevices: true, propagate: "rshared"},
		{name: "bootstrap", c: Container{Name: "disks", Kind: Bootstrap, Source: "x"},
			mounts:   append([]string{"/.bottlerocket/bootstrap-containers/disks", "/.bottlerocket/bootstrap-containers/current", "/.bottlerocket/rootfs/var/lib/containerd"}, privileged...),
			noMounts: []string{"/.bottlerocket/host-containers/disks", "/.bottlerocket/rootfs/var/lib/kubelet"},
			hostPID:  true, addedCaps: bootstrapCaps, seccomp: true, allDevices: true, propagate: "rshared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := spec(t, tc.c, nil)
			for _, d := range tc.mounts {
				if mountOf(s, d) == nil {
					t.Errorf("no mount at %s", d)
				}
			}
			for _, d := range tc.noMounts {
				if mountOf(s, d) != nil {
					t.Errorf("unexpected mount at %s", d)
				}
			}
			if hasNamespace(s, specs.NetworkNamespace) {
				t.Error("container has its own network namespace; want the host's")
			}
			if got := !hasNamespace(s, specs.PIDNamespace); got != tc.hostPID {
				t.Errorf("host PID namespace = %v, want %v", got, tc.hostPID)
			}
			caps := s.Process.Capabilities.Effective
			if tc.allCaps && !slices.Contains(caps, "CAP_SYS_ADMIN") {
				t.Errorf("superpowered caps lack CAP_SYS_ADMIN: %v", caps)
			}
			if !tc.allCaps && len(tc.addedCaps) == 0 && slices.Contains(caps, "CAP_SYS_ADMIN") {
				t.Errorf("host container has CAP_SYS_ADMIN")
			}
			for _, c := range tc.addedCaps {
				if !slices.Contains(caps, c) {
					t.Errorf("missing %s in %v", c, caps)
				}
			}
			if (s.Linux.Seccomp != nil) != tc.seccomp {
				t.Errorf("seccomp profile set = %v, want %v", s.Linux.Seccomp != nil, tc.seccomp)
			}
			// No deny rule: every device is allowed (or the parent cgroup's rules apply).
			allDev := !slices.ContainsFunc(s.Linux.Resources.Devices, func(d specs.LinuxDeviceCgroup) bool { return !d.Allow })
			if allDev != tc.allDevices {
				t.Errorf("all devices allowed = %v, want %v", allDev, tc.allDevices)
			}
			if s.Linux.RootfsPropagation != tc.propagate {
				t.Errorf("rootfs propagation %q, want %q", s.Linux.RootfsPropagation, tc.propagate)
			}
			if slices.Contains(s.Linux.MaskedPaths, "/sys/firmware") {
				t.Error("/sys/firmware is masked")
			}
		})
	}
}

func TestBootstrapSeccompAllowsSwap(t *testing.T) {
	s := spec(t, Container{Name: "swap", Kind: Bootstrap, Source: "x"}, nil)
	if !slices.ContainsFunc(s.Linux.Seccomp.Syscalls, func(sc specs.LinuxSyscall) bool {
		return slices.Contains(sc.Names, "swapon") && sc.Action == specs.ActAllow
	}) {
		t.Error("bootstrap seccomp profile does not allow swapon")
	}
}

func TestMountOptions(t *testing.T) {
	s := spec(t, Container{Name: "admin", Kind: Host, Source: "x", Superpowered: true}, nil)
	for _, tc := range []struct {
		dest, source string
		want         []string
	}{
		{"/.bottlerocket/host-containers/admin", "/local/host-containers/admin", []string{"rbind", "rw", "rprivate"}},
		{"/.bottlerocket/host-containers/current", "/local/host-containers/admin", []string{"rbind", "rw", "rprivate"}},
		{"/usr/local/bin/apiclient", "/usr/bin/apiclient", []string{"bind", "ro", "rprivate"}},
		{"/.bottlerocket/rootfs/mnt", "/mnt", []string{"rbind", "rshared", "rw"}},
		{"/.bottlerocket/rootfs", "/", []string{"rbind", "ro", "rprivate"}},
	} {
		m := mountOf(s, tc.dest)
		if m == nil {
			t.Errorf("no mount at %s", tc.dest)
			continue
		}
		if m.Source != tc.source || !slices.Equal(m.Options, tc.want) {
			t.Errorf("%s: source %s options %v, want %s %v", tc.dest, m.Source, m.Options, tc.source, tc.want)
		}
	}
	// The persistent directory named "current" is mounted once.
	s = spec(t, Container{Name: "current", Kind: Host, Source: "x"}, nil)
	n := 0
	for _, m := range s.Mounts {
		if strings.HasPrefix(m.Destination, "/.bottlerocket/host-containers/") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("container \"current\" has %d persistent mounts, want 1", n)
	}
}

func TestProxyEnvironment(t *testing.T) {
	s := spec(t, Container{Name: "admin", Kind: Host, Source: "x"},
		map[string]string{"HTTPS_PROXY": "http://proxy:3128", "no_proxy": "localhost", "HOME": "/root"})
	for _, want := range []string{"HTTPS_PROXY=http://proxy:3128", "no_proxy=localhost"} {
		if !slices.Contains(s.Process.Env, want) {
			t.Errorf("env %v lacks %s", s.Process.Env, want)
		}
	}
	if slices.ContainsFunc(s.Process.Env, func(e string) bool { return strings.HasPrefix(e, "HOME=/root") }) {
		t.Error("host-ctr's HOME leaked into the container")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Container
		want string
	}{
		{Container{Name: "admin", Kind: Host, Source: "x"}, ""},
		{Container{Name: "admin", Kind: Host, Source: "x", Superpowered: true}, ""},
		{Container{Name: "disks", Kind: Bootstrap, Source: "x", Superpowered: true}, "cannot be superpowered"},
		{Container{Name: "my_ctr", Kind: Host, Source: "x"}, "letters, digits or '-'"},
		{Container{Name: "a", Kind: "sidecar", Source: "x"}, "unknown container type"},
		{Container{Name: "a", Kind: Host}, "no source"},
	} {
		err := tc.c.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
	if got := (Container{Name: "disks", Kind: Bootstrap}).ID(); got != "boot.disks" {
		t.Errorf("bootstrap ID %q", got)
	}
}
