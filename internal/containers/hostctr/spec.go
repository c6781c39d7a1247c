package hostctr

import (
	"context"
	"slices"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// bootstrapCaps are added to the default set for bootstrap containers, so
// that they can format and mount disks, load modules and set audit rules.
var bootstrapCaps = []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_CHROOT", "CAP_SYS_MODULE", "CAP_AUDIT_CONTROL"}

// proxyVars are copied from host-ctr's environment (its unit reads
// /etc/network/proxy.env) into every container's.
var proxyVars = []string{"HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"}

// SpecOpts returns the spec options of the container beyond its image's
// configuration (which the caller applies first): Bottlerocket's for each
// kind. Every container shares the host's network namespace, hosts and
// resolv.conf and sees /sys/firmware; a host container keeps containerd's
// default capabilities and seccomp profile in its own PID namespace; a
// superpowered one is privileged in the host's PID namespace with every
// device; a bootstrap container is in the host's PID namespace with every
// device and the default set plus bootstrapCaps, and may call swapon and
// swapoff. env is the environment to copy the proxy variables from.
func (p Paths) SpecOpts(c Container, exists func(string) bool, env func(string) (string, bool)) []oci.SpecOpts {
	opts := []oci.SpecOpts{
		oci.WithHostNamespace(specs.NetworkNamespace),
		oci.WithHostHostsFile,
		oci.WithHostResolvconf,
		withUnmasked("/sys/firmware"),
		oci.WithMounts(p.Mounts(c, exists)),
	}
	var vars []string
	for _, k := range proxyVars {
		if v, ok := env(k); ok {
			vars = append(vars, k+"="+v)
		}
	}
	if len(vars) > 0 {
		opts = append(opts, oci.WithEnv(vars))
	}
	switch {
	case c.Superpowered:
		opts = append(opts,
			oci.WithHostNamespace(specs.PIDNamespace),
			oci.WithPrivileged,
			oci.WithNewPrivileges,
			oci.WithAllDevicesAllowed,
			oci.WithParentCgroupDevices,
			withRootfsPropagation("rshared"),
		)
	case c.Kind == Bootstrap:
		opts = append(opts,
			oci.WithHostNamespace(specs.PIDNamespace),
			oci.WithAddedCapabilities(bootstrapCaps),
			oci.WithAllDevicesAllowed,
			withRootfsPropagation("rshared"),
			withSeccompAllowing("swapon", "swapoff"),
		)
	default:
		opts = append(opts, seccomp.WithDefaultProfile())
	}
	return opts
}

// withUnmasked removes paths from the masked paths.
func withUnmasked(paths ...string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux != nil {
			s.Linux.MaskedPaths = slices.DeleteFunc(s.Linux.MaskedPaths, func(m string) bool {
				return slices.Contains(paths, m)
			})
		}
		return nil
	}
}

func withRootfsPropagation(mode string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		s.Linux.RootfsPropagation = mode
		return nil
	}
}

// withSeccompAllowing sets containerd's default seccomp profile (for the
// capabilities the spec has by then) and allows the named calls too.
func withSeccompAllowing(calls ...string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		profile := seccomp.DefaultProfile(s)
		profile.Syscalls = append(profile.Syscalls, specs.LinuxSyscall{Names: calls, Action: specs.ActAllow})
		s.Linux.Seccomp = profile
		return nil
	}
}
