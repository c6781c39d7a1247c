package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Kubernetes modeled types (reference api-system §4.2) and the
// settings.kubernetes group (containers-settings-tools §3.3).

// KubernetesSettings is the settings.kubernetes group: how the kubelet joins
// its cluster and how it manages the node's resources.
type KubernetesSettings struct {
	ClusterName        *KubernetesClusterName        `json:"cluster-name,omitempty" doc:"Name of the cluster the node joins."`
	APIServer          *URL                          `json:"api-server,omitempty" doc:"URL of the cluster's Kubernetes API server."`
	ClusterCertificate *ValidBase64                  `json:"cluster-certificate,omitempty" doc:"Base64 of the cluster's CA certificate (PEM)."`
	ClusterDomain      *DNSDomain                    `json:"cluster-domain,omitempty" doc:"DNS domain of the cluster, cluster.local by default."`
	StandaloneMode     *bool                         `json:"standalone-mode,omitempty" doc:"Run the kubelet without a cluster, for static pods only."`
	AuthenticationMode *KubernetesAuthenticationMode `json:"authentication-mode,omitempty" doc:"How the kubelet authenticates to the API server: aws or tls."`
	BootstrapToken     *KubernetesBootstrapToken     `json:"bootstrap-token,omitempty" doc:"Bootstrap token the kubelet uses to join in tls mode."`
	ServerTLSBootstrap *bool                         `json:"server-tls-bootstrap,omitempty" doc:"Request the kubelet's serving certificate from the cluster."`
	CloudProvider      *KubernetesCloudProvider      `json:"cloud-provider,omitempty" doc:"Cloud provider given to the kubelet: aws, external or empty."`

	HostnameOverrideSource *KubernetesHostnameOverrideSource `json:"hostname-override-source,omitempty" doc:"Where the node name comes from: private-dns-name or instance-id."`
	CredentialProviders    map[Identifier]CredentialProvider `json:"credential-providers,omitempty" doc:"Image credential provider plugins the kubelet may run, by name."`
	SeccompDefault         *bool                             `json:"seccomp-default,omitempty" doc:"Use the RuntimeDefault seccomp profile for pods that name none."`

	MaxPods                *uint32                `json:"max-pods,omitempty" doc:"Largest number of pods the node runs."`
	ClusterDNSIP           KubernetesClusterDNSIP `json:"cluster-dns-ip,omitempty" doc:"IP address, or list of addresses, of the cluster DNS service."`
	NodeIP                 *IPAddress             `json:"node-ip,omitempty" doc:"IP address the node advertises to the cluster."`
	PodInfraContainerImage *SingleLineString      `json:"pod-infra-container-image,omitempty" doc:"Image of the pause container that holds each pod's namespaces."`
	ProviderID             *URL                   `json:"provider-id,omitempty" doc:"Cloud provider ID of the node, such as aws:///us-west-2a/i-0123456789abcdef0."`
	HostnameOverride       *ValidLinuxHostname    `json:"hostname-override,omitempty" doc:"Node name to use instead of the host name."`

	KubeReserved   map[KubernetesReservedResourceKey]KubernetesQuantityValue `json:"kube-reserved,omitempty" doc:"Resources held back for Kubernetes system daemons, by resource."`
	SystemReserved map[KubernetesReservedResourceKey]KubernetesQuantityValue `json:"system-reserved,omitempty" doc:"Resources held back for operating system daemons, by resource."`

	EvictionHard              map[KubernetesEvictionKey]KubernetesThresholdValue `json:"eviction-hard,omitempty" doc:"Thresholds that make the kubelet evict pods at once, by signal."`
	EvictionSoft              map[KubernetesEvictionKey]KubernetesThresholdValue `json:"eviction-soft,omitempty" doc:"Thresholds that make the kubelet evict pods after a grace period, by signal."`
	EvictionSoftGracePeriod   map[KubernetesEvictionKey]KubernetesDurationValue  `json:"eviction-soft-grace-period,omitempty" doc:"How long each soft eviction threshold must hold before pods are evicted."`
	EvictionMaxPodGracePeriod *int32                                             `json:"eviction-max-pod-grace-period,omitempty" doc:"Longest grace period in seconds given to pods evicted at a soft threshold."`

	AllowedUnsafeSysctls []SingleLineString                            `json:"allowed-unsafe-sysctls,omitempty" doc:"Unsafe sysctls, or sysctl patterns ending in *, that pods may set."`
	NodeLabels           map[KubernetesLabelKey]KubernetesLabelValue   `json:"node-labels,omitempty" doc:"Labels the node registers with, by label key."`
	NodeTaints           map[KubernetesLabelKey][]KubernetesTaintValue `json:"node-taints,omitempty" doc:"Taints the node registers with: for each key, a list of value:effect."`

	RegistryQPS          *int32                   `json:"registry-qps,omitempty" doc:"Image pulls per second the kubelet may start; 0 means no limit."`
	RegistryBurst        *int32                   `json:"registry-burst,omitempty" doc:"Image pulls the kubelet may start at once when bursting."`
	EventQPS             *int32                   `json:"event-qps,omitempty" doc:"Events per second the kubelet may create; 0 means no limit."`
	EventBurst           *int32                   `json:"event-burst,omitempty" doc:"Events the kubelet may create at once when bursting."`
	KubeAPIQPS           *int32                   `json:"kube-api-qps,omitempty" doc:"Requests per second the kubelet may send to the API server."`
	KubeAPIBurst         *int32                   `json:"kube-api-burst,omitempty" doc:"Requests the kubelet may send to the API server at once when bursting."`
	ContainerLogMaxSize  *KubernetesQuantityValue `json:"container-log-max-size,omitempty" doc:"Size at which a container's log file is rotated, such as 10Mi."`
	ContainerLogMaxFiles *int32                   `json:"container-log-max-files,omitempty" doc:"Number of log files kept for each container."`
	LogLevel             *uint32                  `json:"log-level,omitempty" doc:"Verbosity of the kubelet's logs."`

	CPUManagerPolicy          *CPUManagerPolicy        `json:"cpu-manager-policy,omitempty" doc:"CPU manager policy: none or static."`
	CPUManagerReconcilePeriod *KubernetesDurationValue `json:"cpu-manager-reconcile-period,omitempty" doc:"How often the CPU manager reconciles CPU assignments."`
	CPUCFSQuotaEnforced       *bool                    `json:"cpu-cfs-quota-enforced,omitempty" doc:"Enforce container CPU limits with CFS quota."`
	PodPidsLimit              *int64                   `json:"pod-pids-limit,omitempty" doc:"Largest number of processes in one pod; -1 means no limit."`
	TopologyManagerScope      *TopologyManagerScope    `json:"topology-manager-scope,omitempty" doc:"Scope of topology alignment: container or pod."`
	TopologyManagerPolicy     *TopologyManagerPolicy   `json:"topology-manager-policy,omitempty" doc:"Topology manager policy: none, restricted, best-effort or single-numa-node."`

	MemoryManagerPolicy         *KubernetesMemoryManagerPolicy             `json:"memory-manager-policy,omitempty" doc:"Memory manager policy: None or Static."`
	MemoryManagerReservedMemory map[Identifier]KubernetesMemoryReservation `json:"memory-manager-reserved-memory,omitempty" doc:"Memory the Static memory manager holds back, by NUMA node number."`
	ReservedCPUs                *SingleLineString                          `json:"reserved-cpus,omitempty" doc:"CPUs held back for system daemons, as a list such as 0-3,8."`

	ShutdownGracePeriod                *KubernetesDurationValue `json:"shutdown-grace-period,omitempty" doc:"How long node shutdown is delayed so pods can stop."`
	ShutdownGracePeriodForCriticalPods *KubernetesDurationValue `json:"shutdown-grace-period-for-critical-pods,omitempty" doc:"Part of the shutdown grace period kept for critical pods."`
	ImageGCHighThresholdPercent        IntegerPercent           `json:"image-gc-high-threshold-percent,omitempty" doc:"Disk use percentage above which image garbage collection always runs."`
	ImageGCLowThresholdPercent         IntegerPercent           `json:"image-gc-low-threshold-percent,omitempty" doc:"Disk use percentage that image garbage collection frees down to."`
	ServerCertificate                  *ValidBase64             `json:"server-certificate,omitempty" doc:"Base64 of the kubelet's serving certificate (PEM)."`
	ServerKey                          *ValidBase64             `json:"server-key,omitempty" doc:"Base64 of the private key of the kubelet's serving certificate (PEM)."`
	StaticPods                         map[Identifier]StaticPod `json:"static-pods,omitempty" doc:"Pods the kubelet runs from manifests, by name."`
}

// CredentialProvider configures one kubelet image credential provider plugin.
type CredentialProvider struct {
	Enabled       *bool                                     `json:"enabled,omitempty" doc:"Whether the kubelet uses this credential provider."`
	CacheDuration *KubernetesDurationValue                  `json:"cache-duration,omitempty" doc:"How long the kubelet caches credentials from this provider."`
	ImagePatterns []SingleLineString                        `json:"image-patterns,omitempty" doc:"Image name patterns, such as *.dkr.ecr.*.amazonaws.com, the provider serves."`
	Environment   map[KubernetesEnvVarName]SingleLineString `json:"environment,omitempty" doc:"Environment variables passed to the provider plugin, by name."`
}

// StaticPod is a pod the kubelet runs from a manifest rather than from the
// API server.
type StaticPod struct {
	Enabled  *bool        `json:"enabled,omitempty" doc:"Whether the kubelet runs this pod."`
	Manifest *ValidBase64 `json:"manifest,omitempty" doc:"Base64 of the pod's manifest (YAML or JSON)."`
}

// KubernetesMemoryReservation is the memory the Static memory manager holds
// back on one NUMA node.
type KubernetesMemoryReservation struct {
	Enabled      *bool                    `json:"enabled,omitempty" doc:"Whether this NUMA node's reservation is passed to the kubelet."`
	Memory       *KubernetesQuantityValue `json:"memory,omitempty" doc:"Ordinary memory held back on this NUMA node, such as 1Gi."`
	Hugepages2Mi *KubernetesQuantityValue `json:"hugepages-2Mi,omitempty" doc:"2 MiB huge pages held back on this NUMA node, as a quantity of memory."`
	Hugepages1Gi *KubernetesQuantityValue `json:"hugepages-1Gi,omitempty" doc:"1 GiB huge pages held back on this NUMA node, as a quantity of memory."`
}

var kubernetesNameRe = regexp.MustCompile(`^[0-9a-z.-]{1,253}$`)

// KubernetesName is a Kubernetes resource name: 1-253 characters of a-z,
// 0-9, '.' and '-'.
type KubernetesName string

// Validate implements Validator.
func (s KubernetesName) Validate() error {
	if !kubernetesNameRe.MatchString(string(s)) {
		return errors.New("must be 1-253 characters of a-z, 0-9, '.' and '-'")
	}
	return nil
}

var (
	// labelNameRe is the name part of a label key, and a non-empty label
	// value: alphanumeric at both ends, '-', '_' and '.' inside.
	labelNameRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
	// dnsLabelRe is one label of an RFC 1123 subdomain.
	dnsLabelRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
)

// checkLabelName checks the 63-character rule shared by label names, label
// values and taint values.
func checkLabelName(s string) error {
	switch {
	case s == "" || len(s) > 63:
		return errors.New("must be 1-63 characters")
	case !labelNameRe.MatchString(s):
		return errors.New("must be A-Z, a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit")
	}
	return nil
}

// KubernetesLabelKey is a label key: an optional DNS subdomain prefix and
// '/', then a name of up to 63 characters, such as
// "node.kubernetes.io/lifecycle".
type KubernetesLabelKey string

// Validate implements Validator.
func (s KubernetesLabelKey) Validate() error {
	prefix, name, hasPrefix := strings.Cut(string(s), "/")
	if !hasPrefix {
		name, prefix = prefix, ""
	}
	if hasPrefix {
		if strings.Contains(name, "/") {
			return errors.New("must contain at most one '/', between the prefix and the name")
		}
		if prefix == "" || len(prefix) > 253 {
			return errors.New("prefix before '/' must be 1-253 characters")
		}
		for _, l := range strings.Split(prefix, ".") {
			if !dnsLabelRe.MatchString(l) {
				return fmt.Errorf("prefix %q must be a lower-case DNS name (labels of a-z, 0-9 and '-', starting and ending with a letter or digit, joined by '.')", prefix)
			}
		}
	}
	if err := checkLabelName(name); err != nil {
		return fmt.Errorf("name %q %v", name, err)
	}
	return nil
}

// KubernetesLabelValue is a label value: empty, or up to 63 characters that
// start and end with a letter or digit.
type KubernetesLabelValue string

// Validate implements Validator.
func (s KubernetesLabelValue) Validate() error {
	if s == "" {
		return nil
	}
	if err := checkLabelName(string(s)); err != nil {
		return fmt.Errorf("%q %v (or be empty)", string(s), err)
	}
	return nil
}

var clusterNameRe = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z_-]*$`)

// KubernetesClusterName is a cluster name under the EKS rules: 1-100
// characters of A-Z, a-z, 0-9, '-' and '_', starting with a letter or digit.
type KubernetesClusterName string

// Validate implements Validator.
func (s KubernetesClusterName) Validate() error {
	switch {
	case s == "" || len(s) > 100:
		return errors.New("must be 1-100 characters")
	case !clusterNameRe.MatchString(string(s)):
		return fmt.Errorf("%q must be A-Z, a-z, 0-9, '-' and '_', starting with a letter or digit", string(s))
	}
	return nil
}

// taintEffects are the effects the kubelet accepts; it refuses to start with
// any other.
var taintEffects = []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}

// KubernetesTaintValue is the value and effect of a node taint, written
// "[value]:effect", such as "true:NoSchedule" or ":NoExecute".
type KubernetesTaintValue string

// Validate implements Validator.
func (s KubernetesTaintValue) Validate() error {
	i := strings.LastIndexByte(string(s), ':')
	if i < 0 {
		return fmt.Errorf("%q must be written [value]:effect, such as \"true:NoSchedule\"", string(s))
	}
	value, effect := string(s[:i]), string(s[i+1:])
	if value != "" {
		if err := checkLabelName(value); err != nil {
			return fmt.Errorf("taint value %q %v", value, err)
		}
	}
	if err := oneOf(effect, taintEffects...); err != nil {
		return fmt.Errorf("taint effect %v", err)
	}
	return nil
}

// KubernetesAuthenticationMode says how the kubelet authenticates to the API
// server: "aws" (IAM) or "tls" (bootstrap token).
type KubernetesAuthenticationMode string

// Validate implements Validator.
func (s KubernetesAuthenticationMode) Validate() error { return oneOf(string(s), "aws", "tls") }

var bootstrapTokenRe = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)

// KubernetesBootstrapToken is a bootstrap token, "<6 chars>.<16 chars>" of
// a-z and 0-9.
type KubernetesBootstrapToken string

// Validate implements Validator. The error never repeats the token, which is
// a secret.
func (s KubernetesBootstrapToken) Validate() error {
	if !bootstrapTokenRe.MatchString(string(s)) {
		return errors.New(`must be 6 and then 16 characters of a-z and 0-9 joined by '.', such as "abcdef.0123456789abcdef"`)
	}
	return nil
}

// KubernetesCloudProvider is the kubelet's --cloud-provider: "aws",
// "external", or empty. Bottlerocket stores empty as the two characters `""`,
// which is accepted too.
type KubernetesCloudProvider string

// Validate implements Validator.
func (s KubernetesCloudProvider) Validate() error {
	if s == `""` {
		return nil
	}
	return oneOf(string(s), "aws", "external", "")
}

// KubernetesHostnameOverrideSource says where the node name comes from on
// AWS.
type KubernetesHostnameOverrideSource string

// Validate implements Validator.
func (s KubernetesHostnameOverrideSource) Validate() error {
	return oneOf(string(s), "private-dns-name", "instance-id")
}

// KubernetesEvictionKey is an eviction signal, such as "memory.available".
type KubernetesEvictionKey string

// Validate implements Validator.
func (s KubernetesEvictionKey) Validate() error {
	return oneOf(string(s), "memory.available", "nodefs.available", "nodefs.inodesFree",
		"imagefs.available", "imagefs.inodesFree", "pid.available")
}

// KubernetesReservedResourceKey is a resource that kube-reserved and
// system-reserved can hold back.
type KubernetesReservedResourceKey string

// Validate implements Validator.
func (s KubernetesReservedResourceKey) Validate() error {
	return oneOf(string(s), "cpu", "memory", "ephemeral-storage")
}

// quantityRe is the Kubernetes quantity grammar without a sign: a decimal
// number, then a binary suffix (Ki..Ei), a decimal suffix (n, u, m, k, M..E)
// or an exponent (e3, E-2).
var quantityRe = regexp.MustCompile(`^(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$`)

func checkQuantity(s string) error {
	if strings.HasPrefix(s, "-") {
		return fmt.Errorf("%q must not be negative", s)
	}
	if !quantityRe.MatchString(s) {
		return fmt.Errorf("%q is not a Kubernetes quantity such as 100m, 512Mi, 1G or 129e6", s)
	}
	return nil
}

// KubernetesQuantityValue is a non-negative Kubernetes quantity such as
// "100m", "512Mi" or "1G".
type KubernetesQuantityValue string

// Validate implements Validator.
func (s KubernetesQuantityValue) Validate() error { return checkQuantity(string(s)) }

var percentRe = regexp.MustCompile(`^(\d+(\.\d+)?|\.\d+)%$`)

// KubernetesThresholdValue is an eviction threshold: a quantity such as
// "100Mi", or a percentage of at least 0% and below 100% such as "10%".
type KubernetesThresholdValue string

// Validate implements Validator.
func (s KubernetesThresholdValue) Validate() error {
	v := string(s)
	if !strings.HasSuffix(v, "%") {
		if err := checkQuantity(v); err != nil {
			return fmt.Errorf("%v, or a percentage such as 10%%", err)
		}
		return nil
	}
	if !percentRe.MatchString(v) {
		return fmt.Errorf("%q is not a percentage such as 10%% or 7.5%%", v)
	}
	p, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
	if err != nil || p >= 100 {
		return fmt.Errorf("percentage %q must be at least 0%% and below 100%%", v)
	}
	return nil
}

// durationUnit is a unit suffix of a duration and its rank; units must appear
// from the largest (lowest rank) to the smallest, each at most once.
type durationUnit struct {
	suffix string
	rank   int
}

var (
	kubernetesDurationUnits = []durationUnit{{"h", 0}, {"m", 1}, {"s", 2}, {"ms", 3}}
	ecsDurationUnits        = []durationUnit{{"h", 0}, {"m", 1}, {"s", 2}, {"ms", 3}, {"us", 4}, {"µs", 4}, {"ns", 5}}
)

// checkDuration checks a Go-style duration such as "1h30m" or "1.5s" whose
// units come from units in decreasing size.
func checkDuration(s string, units []durationUnit) error {
	names := make([]string, 0, len(units))
	for _, u := range units {
		names = append(names, u.suffix)
	}
	bad := func() error {
		return fmt.Errorf("%q is not a duration such as 90s or 1h30m (units: %s, largest first)", s, strings.Join(names, ", "))
	}
	if s == "" {
		return bad()
	}
	rest, last := s, -1
	for rest != "" {
		// A number: digits, optionally a '.' and more digits.
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 0 {
			return bad()
		}
		if n < len(rest) && rest[n] == '.' {
			m := n + 1
			for m < len(rest) && rest[m] >= '0' && rest[m] <= '9' {
				m++
			}
			if m == n+1 {
				return bad()
			}
			n = m
		}
		rest = rest[n:]
		// The longest unit that matches.
		var unit durationUnit
		for _, u := range units {
			if strings.HasPrefix(rest, u.suffix) && len(u.suffix) > len(unit.suffix) {
				unit = u
			}
		}
		if unit.suffix == "" {
			return bad()
		}
		if unit.rank <= last {
			return fmt.Errorf("%q: units must go from largest to smallest, each at most once (such as 1h30m)", s)
		}
		last = unit.rank
		rest = rest[len(unit.suffix):]
	}
	if _, err := time.ParseDuration(s); err != nil {
		return fmt.Errorf("%q is too long a duration", s)
	}
	return nil
}

// KubernetesDurationValue is a duration such as "90s", "1h30m" or "1.5h",
// in units of h, m, s and ms, largest first.
type KubernetesDurationValue string

// Validate implements Validator.
func (s KubernetesDurationValue) Validate() error {
	return checkDuration(string(s), kubernetesDurationUnits)
}

// CPUManagerPolicy is the kubelet's CPU manager policy: "none" or "static".
type CPUManagerPolicy string

// Validate implements Validator.
func (s CPUManagerPolicy) Validate() error { return oneOf(string(s), "none", "static") }

// TopologyManagerScope is the granularity of topology alignment:
// "container" or "pod".
type TopologyManagerScope string

// Validate implements Validator.
func (s TopologyManagerScope) Validate() error { return oneOf(string(s), "container", "pod") }

// TopologyManagerPolicy is the kubelet's topology manager policy.
type TopologyManagerPolicy string

// Validate implements Validator.
func (s TopologyManagerPolicy) Validate() error {
	return oneOf(string(s), "none", "restricted", "best-effort", "single-numa-node")
}

// KubernetesMemoryManagerPolicy is the kubelet's memory manager policy:
// "None" or "Static", capitalized as the kubelet spells them.
type KubernetesMemoryManagerPolicy string

// Validate implements Validator.
func (s KubernetesMemoryManagerPolicy) Validate() error { return oneOf(string(s), "None", "Static") }

var envVarNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// KubernetesEnvVarName names an environment variable given to a credential
// provider plugin: a letter or '_', then letters, digits and '_'.
type KubernetesEnvVarName string

// Validate implements Validator.
func (s KubernetesEnvVarName) Validate() error {
	if len(s) > 255 || !envVarNameRe.MatchString(string(s)) {
		return fmt.Errorf("%q must be 1-255 characters of A-Z, a-z, 0-9 and '_', not starting with a digit", string(s))
	}
	return nil
}

// KubernetesClusterDNSIP is the kubelet's --cluster-dns: one IP address or a
// list of them. Its JSON may be a string or a list of strings; it always
// decodes to a list.
type KubernetesClusterDNSIP []IPAddress

// CheckJSON implements JSONChecker.
func (KubernetesClusterDNSIP) CheckJSON(v any) error {
	switch t := v.(type) {
	case string:
		return IPAddress(t).Validate()
	case []any:
		for i, e := range t {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("entry %d: expected an IP address, got %s", i, jsonKind(e))
			}
			if err := IPAddress(s).Validate(); err != nil {
				return fmt.Errorf("entry %d: %v", i, err)
			}
		}
		return nil
	}
	return fmt.Errorf("expected an IP address or a list of them, got %s", jsonKind(v))
}

// UnmarshalJSON accepts a single address or a list of addresses.
func (d *KubernetesClusterDNSIP) UnmarshalJSON(b []byte) error {
	v, err := DecodeJSON(b)
	if err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	if err := d.CheckJSON(v); err != nil {
		return err
	}
	out := KubernetesClusterDNSIP{}
	switch t := v.(type) {
	case string:
		out = append(out, IPAddress(t))
	case []any:
		for _, e := range t {
			out = append(out, IPAddress(e.(string)))
		}
	}
	*d = out
	return nil
}

// IntegerPercent is a whole percentage from 0 to 100. Its JSON may be a
// number (85) or a string holding one ("85"); the JSON is kept as given, so
// it is written back in the same form.
type IntegerPercent json.RawMessage

var integerRe = regexp.MustCompile(`^-?[0-9]+$`)

func parseIntegerPercent(s string) (int, error) {
	if !integerRe.MatchString(s) {
		return 0, fmt.Errorf("%q is not a whole number from 0 to 100", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 100 {
		return 0, fmt.Errorf("%s must be from 0 to 100", s)
	}
	return n, nil
}

// CheckJSON implements JSONChecker.
func (IntegerPercent) CheckJSON(v any) error {
	switch t := v.(type) {
	case json.Number:
		_, err := parseIntegerPercent(t.String())
		return err
	case string:
		_, err := parseIntegerPercent(t)
		return err
	}
	return fmt.Errorf("expected a number from 0 to 100 (or a string holding one), got %s", jsonKind(v))
}

// UnmarshalJSON accepts a number or a string holding one.
func (p *IntegerPercent) UnmarshalJSON(b []byte) error {
	v, err := DecodeJSON(b)
	if err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	if err := p.CheckJSON(v); err != nil {
		return err
	}
	*p = append(IntegerPercent(nil), b...)
	return nil
}

// MarshalJSON writes the JSON as it was given.
func (p IntegerPercent) MarshalJSON() ([]byte, error) {
	if len(p) == 0 {
		return []byte("null"), nil
	}
	return p, nil
}

// Percent returns the value as a number.
func (p IntegerPercent) Percent() (int, error) {
	v, err := DecodeJSON(p)
	if err != nil {
		return 0, err
	}
	switch t := v.(type) {
	case json.Number:
		return parseIntegerPercent(t.String())
	case string:
		return parseIntegerPercent(t)
	}
	return 0, fmt.Errorf("expected a number from 0 to 100, got %s", jsonKind(v))
}
