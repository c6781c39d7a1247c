package model

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// The settings groups shared by every variant. Each field is optional: a
// document may set any subset, and a field left out keeps its stored value.

// NTPSettings configure time synchronization.
type NTPSettings struct {
	TimeServers []URL    `json:"time-servers,omitempty" doc:"NTP servers to synchronize time with."`
	Options     []string `json:"options,omitempty" doc:"Options appended to every server line, such as iburst."`
}

// NetworkSettings configure the host's network identity and proxies.
type NetworkSettings struct {
	Hostname   *ValidLinuxHostname `json:"hostname,omitempty" doc:"The host name; when unset, generated at first boot: DHCP's, else the reverse DNS name of the node's address, else ip-a-b-c-d."`
	Hosts      EtcHostsEntries     `json:"hosts,omitempty" doc:"Static /etc/hosts entries as [address, [names]] pairs."`
	HTTPSProxy *URL                `json:"https-proxy,omitempty" doc:"Proxy for everything that goes out: updog (http and https repositories), containerd, host containers, the orchestrator agent."`
	NoProxy    []SingleLineString  `json:"no-proxy,omitempty" doc:"Hosts, domains (.example.com) and CIDR ranges that bypass the proxy; localhost and 127.0.0.1 are always added (and the Kubernetes API server and .cluster-domain on Kubernetes nodes)."`
}

// DNSSettings configure name resolution.
type DNSSettings struct {
	NameServers []IPAddress          `json:"name-servers,omitempty" doc:"Name servers for /etc/resolv.conf; when unset, the ones DHCP gives the primary interface."`
	SearchList  []ValidLinuxHostname `json:"search-list,omitempty" doc:"Search domains for /etc/resolv.conf; when unset, DHCP's."`
}

// KernelModule controls one kernel module.
type KernelModule struct {
	Allowed  *bool `json:"allowed,omitempty" doc:"false prevents the module from loading."`
	Autoload *bool `json:"autoload,omitempty" doc:"true loads the module at boot (needs allowed)."`
}

// KernelSettings configure the kernel.
type KernelSettings struct {
	Lockdown *Lockdown                `json:"lockdown,omitempty" doc:"Kernel lockdown level: none, integrity or confidentiality; it can only be raised at runtime."`
	Sysctl   map[SysctlKey]string     `json:"sysctl,omitempty" doc:"Kernel parameters by name, written to /etc/sysctl.d; quote names with dots in keys."`
	Modules  map[KmodKey]KernelModule `json:"modules,omitempty" doc:"Kernel modules to block or autoload."`
}

// BootSettings configure the kernel and init command lines (boot config).
type BootSettings struct {
	RebootToReconcile *bool                               `json:"reboot-to-reconcile,omitempty" doc:"Reboot during boot when the boot settings changed, so they take effect."`
	KernelParameters  map[BootConfigKey][]BootConfigValue `json:"kernel-parameters,omitempty" doc:"Kernel command-line parameters for the next boot."`
	InitParameters    map[BootConfigKey][]BootConfigValue `json:"init-parameters,omitempty" doc:"Init (systemd) command-line parameters for the next boot."`
}

// UpdateSeed places a node in the update waves: an integer 0..2047.
type UpdateSeed uint32

// MaxUpdateSeed is the largest wave seed.
const MaxUpdateSeed = 2047

// CheckJSON implements JSONChecker.
func (UpdateSeed) CheckJSON(v any) error {
	n, ok := v.(json.Number)
	if !ok {
		return fmt.Errorf("expected an integer 0-%d, got %s", MaxUpdateSeed, jsonKind(v))
	}
	i, err := strconv.ParseUint(n.String(), 10, 32)
	if err != nil || i > MaxUpdateSeed {
		return fmt.Errorf("expected an integer 0-%d, got %s", MaxUpdateSeed, n)
	}
	return nil
}

// UpdatesSettings configure image-based updates.
type UpdatesSettings struct {
	MetadataBaseURL *URL             `json:"metadata-base-url,omitempty" doc:"Base URL of the TUF repository's metadata."`
	TargetsBaseURL  *URL             `json:"targets-base-url,omitempty" doc:"Base URL of the TUF repository's targets."`
	Seed            *UpdateSeed      `json:"seed,omitempty" doc:"Position in the update waves, 0-2047; generated at first boot."`
	VersionLock     *FriendlyVersion `json:"version-lock,omitempty" doc:"\"latest\" or the version to stay on, such as v1.2.3."`
	IgnoreWaves     *bool            `json:"ignore-waves,omitempty" doc:"Take an update as soon as it is published, ignoring waves."`
}

// HostContainer is one host container, run by host-containerd outside the
// orchestrator.
type HostContainer struct {
	Source       *ImageReference `json:"source,omitempty" doc:"Image reference of the container."`
	Enabled      *bool           `json:"enabled,omitempty" doc:"Run the container."`
	Superpowered *bool           `json:"superpowered,omitempty" doc:"Give the container full access to the host (privileged, host namespaces)."`
	UserData     *ValidBase64    `json:"user-data,omitempty" doc:"Base64 data handed to the container at start."`
	Command      []string        `json:"command,omitempty" doc:"Command to run instead of the image's entry point."`
}

// BootstrapContainer runs before the orchestrator starts.
type BootstrapContainer struct {
	Source    *ImageReference         `json:"source,omitempty" doc:"Image reference of the container."`
	Mode      *BootstrapContainerMode `json:"mode,omitempty" doc:"off, once (next boot only) or always (every boot)."`
	UserData  *ValidBase64            `json:"user-data,omitempty" doc:"Base64 data handed to the container."`
	Essential *bool                   `json:"essential,omitempty" doc:"Fail the boot when the container fails."`
}

// BootstrapCommand runs apiclient commands before the node's configuration
// is final (preconfigured.target): the no-image alternative to a bootstrap
// container.
type BootstrapCommand struct {
	Commands  []ApiclientCommand      `json:"commands,omitempty" doc:"apiclient commands to run in order, each a list of arguments starting with apiclient."`
	Mode      *BootstrapContainerMode `json:"mode,omitempty" doc:"off, once or always."`
	Essential *bool                   `json:"essential,omitempty" doc:"Fail the boot when a command fails."`
}

// RegistryMirror sends pulls for a registry to other endpoints.
type RegistryMirror struct {
	Registry *SingleLineString `json:"registry,omitempty" doc:"Registry host, or * for every registry."`
	Endpoint []URL             `json:"endpoint,omitempty" doc:"Mirror endpoints, tried in order."`
}

// RegistryCredential authenticates pulls from a registry.
type RegistryCredential struct {
	Registry      *SingleLineString `json:"registry,omitempty" doc:"Registry host."`
	Username      *SingleLineString `json:"username,omitempty" doc:"User name."`
	Password      *SingleLineString `json:"password,omitempty" doc:"Password."`
	Auth          *ValidBase64      `json:"auth,omitempty" doc:"Base64 of user:password."`
	IdentityToken *SingleLineString `json:"identitytoken,omitempty" doc:"Identity token."`
}

// ContainerRegistrySettings configure image pulls.
type ContainerRegistrySettings struct {
	Mirrors     []RegistryMirror     `json:"mirrors,omitempty" doc:"Registry mirrors."`
	Credentials []RegistryCredential `json:"credentials,omitempty" doc:"Registry credentials."`
}

// PKIBundle is a certificate bundle added to the trust store.
type PKIBundle struct {
	Data    *PemCertificateString `json:"data,omitempty" doc:"Base64 of one or more PEM certificates."`
	Trusted *bool                 `json:"trusted,omitempty" doc:"Trust the bundle."`
}

// MetricsSettings configure anonymous health metrics.
type MetricsSettings struct {
	MetricsURL    *URL     `json:"metrics-url,omitempty" doc:"Where metrics are sent."`
	SendMetrics   *bool    `json:"send-metrics,omitempty" doc:"Send metrics."`
	ServiceChecks []string `json:"service-checks,omitempty" doc:"Services whose health is reported."`
}

// OCIHooksSettings configure OCI hooks.
type OCIHooksSettings struct {
	Log4jHotpatchEnabled *bool `json:"log4j-hotpatch-enabled,omitempty" doc:"Deprecated; accepted and ignored."`
}

// AWSSettings configure AWS access.
type AWSSettings struct {
	Region      *SingleLineString `json:"region,omitempty" doc:"AWS region."`
	Config      *ValidBase64      `json:"config,omitempty" doc:"Base64 AWS config file."`
	Credentials *ValidBase64      `json:"credentials,omitempty" doc:"Base64 AWS credentials file."`
	Profile     *SingleLineString `json:"profile,omitempty" doc:"AWS profile to use."`
}

// ContainerRuntimeSettings tune containerd's CRI plugin.
type ContainerRuntimeSettings struct {
	MaxContainerLogLineSize *int32 `json:"max-container-log-line-size,omitempty" doc:"Longest container log line, in bytes (-1: unlimited)."`
	MaxConcurrentDownloads  *int32 `json:"max-concurrent-downloads,omitempty" doc:"Parallel layer downloads per image (-1: unlimited)."`
	EnableUnprivilegedPorts *bool  `json:"enable-unprivileged-ports,omitempty" doc:"Let containers bind ports below 1024 without privileges."`
	EnableUnprivilegedICMP  *bool  `json:"enable-unprivileged-icmp,omitempty" doc:"Let containers send ICMP echo without privileges."`
}

// OCICapability is a Linux capability name in kebab case, without CAP_.
type OCICapability string

var ociCapabilities = []string{
	"audit-control", "audit-read", "audit-write", "block-suspend", "bpf", "checkpoint-restore", "chown",
	"dac-override", "dac-read-search", "fowner", "fsetid", "ipc-lock", "ipc-owner", "kill", "lease",
	"linux-immutable", "mac-admin", "mac-override", "mknod", "net-admin", "net-bind-service", "net-broadcast",
	"net-raw", "perfmon", "setfcap", "setgid", "setpcap", "setuid", "sys-admin", "sys-boot", "sys-chroot",
	"sys-module", "sys-nice", "sys-pacct", "sys-ptrace", "sys-rawio", "sys-resource", "sys-time",
	"sys-tty-config", "syslog", "wake-alarm",
}

// Validate implements Validator.
func (s OCICapability) Validate() error { return oneOf(string(s), ociCapabilities...) }

// OCIRlimit is a resource limit name in kebab case.
type OCIRlimit string

// Validate implements Validator.
func (s OCIRlimit) Validate() error {
	return oneOf(string(s), "max-address-space", "max-core-file-size", "max-cpu-time", "max-data-size",
		"max-file-locks", "max-file-size", "max-locked-memory", "max-msgqueue-size", "max-nice-priority",
		"max-open-files", "max-pending-signals", "max-processes", "max-realtime-priority",
		"max-realtime-timeout", "max-resident-set", "max-stack-size")
}

// RlimitNumber is an integer ≥ -1 or the string "unlimited".
type RlimitNumber json.RawMessage

// CheckJSON implements JSONChecker.
func (RlimitNumber) CheckJSON(v any) error {
	switch t := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(t.String(), 10, 64); err == nil && i >= -1 {
			return nil
		}
	case string:
		if t == "unlimited" {
			return nil
		}
	}
	return fmt.Errorf("expected an integer ≥ -1 or \"unlimited\", got %s", jsonKind(v))
}

// MarshalJSON keeps the value as given.
func (r RlimitNumber) MarshalJSON() ([]byte, error) { return json.RawMessage(r).MarshalJSON() }

// UnmarshalJSON keeps the value as given.
func (r *RlimitNumber) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// OCIResourceLimit is a soft and hard limit pair.
type OCIResourceLimit struct {
	HardLimit *RlimitNumber `json:"hard-limit,omitempty" doc:"Hard limit: an integer, -1 or \"unlimited\"."`
	SoftLimit *RlimitNumber `json:"soft-limit,omitempty" doc:"Soft limit: an integer, -1 or \"unlimited\"."`
}

// OCIDefaultsSettings set the defaults of the OCI spec of orchestrated containers.
type OCIDefaultsSettings struct {
	Capabilities   map[OCICapability]bool         `json:"capabilities,omitempty" doc:"Capabilities granted by default, by kebab-case name."`
	ResourceLimits map[OCIRlimit]OCIResourceLimit `json:"resource-limits,omitempty" doc:"Resource limits by kebab-case name."`
}
