package render

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected template outputs in testdata/")

const templatesDir = "../../../variants/shared/templates"

// TestTemplates renders each shipped template from settings and compares the
// result with testdata/<case>.expected (-update rewrites them; review the diff).
func TestTemplates(t *testing.T) {
	osRel := `{"arch":"x86_64","variant_id":"metal-dev","version_id":"1.0.0","pretty_name":"Gantry","build_id":"abc"}`
	tests := []struct {
		name, template, settings string
		extra                    string // JSON merged into the context (render-each .name/.item)
	}{
		{name: "motd", template: "motd", settings: `{"motd": "Welcome to Gantry!"}`},
		{name: "hostname", template: "hostname", settings: `{"network": {"hostname": "node-1.example"}}`},
		{name: "hostname-unset", template: "hostname", settings: `{}`},
		{name: "chrony", template: "chrony-conf", settings: `{"ntp": {"time-servers": ["0.pool.ntp.org", "10.0.0.5"], "options": ["iburst", "minpoll 4"]}}`},
		{name: "chrony-no-options", template: "chrony-conf", settings: `{"ntp": {"time-servers": ["time.example"]}}`},
		{name: "hosts", template: "etc-hosts", settings: `{"network": {"hostname": "node-1.example", "hosts": [["10.0.0.10", ["registry.internal", "registry"]], ["fd00::10", ["v6.internal"]]]}}`},
		{name: "hosts-default", template: "etc-hosts", settings: `{}`},
		{name: "sysctl", template: "sysctl-conf", settings: `{"kernel": {"sysctl": {"vm.max_map_count": "262144", "net.ipv4.ip_forward": "1"}}}`},
		{name: "sysctl-empty", template: "sysctl-conf", settings: `{}`},
		{name: "proxy", template: "proxy-env", settings: `{"network": {"https-proxy": "http://proxy.example:3128", "no-proxy": ["10.0.0.0/8", ".internal"]}, "kubernetes": {"api-server": "https://k8s.example:6443", "cluster-domain": "cluster.local"}}`},
		{name: "proxy-none", template: "proxy-env", settings: `{}`},
		{name: "host-containerd", template: "host-containerd-config", settings: `{"container-registry": {"mirrors": [{"registry": "docker.io", "endpoint": ["https://mirror.example"]}]}}`},
		{name: "host-ctr", template: "host-ctr-toml", settings: `{"container-registry": {"mirrors": [{"registry": "ghcr.io", "endpoint": ["http://10.0.2.2:5000", "mirror.example"]}, {"registry": "*", "endpoint": ["https://all.example"]}],
			"credentials": [{"registry": "registry.example.com", "username": "me", "password": "p\"w"}, {"registry": "docker.io", "auth": "bWU6cHc="}]}}`},
		{name: "host-ctr-empty", template: "host-ctr-toml", settings: `{}`},
		{name: "host-container-admin", template: "host-container-env", settings: `{}`,
			extra: `{"name": "admin", "item": {"source": "registry.example/admin:v1", "enabled": true, "superpowered": true, "user-data": "e30="}}`},
		{name: "host-container-minimal", template: "host-container-env", settings: `{}`, extra: `{"name": "custom", "item": {"enabled": false}}`},
		{name: "kubelet", template: "kubelet-config", settings: `{"kubernetes": {"cluster-domain": "cluster.local", "cluster-dns-ip": "10.96.0.10", "max-pods": 58,
			"kube-reserved": {"cpu": "70m", "memory": "893Mi"}, "eviction-hard": {"memory.available": "100Mi"}, "allowed-unsafe-sysctls": ["net.core.somaxconn"],
			"server-tls-bootstrap": true}}`},
		{name: "kubelet-defaults", template: "kubelet-config", settings: `{"kubernetes": {}}`},
		{name: "kubelet-env", template: "kubelet-env", settings: `{"kubernetes": {"node-ip": "192.168.77.2", "node-labels": {"b.example/x": "2", "a.example/y": "1"},
			"node-taints": {"dedicated": ["gpu:NoSchedule", "gpu:NoExecute"], "spot": [":PreferNoSchedule"]}, "hostname-override": "node-a"}}`},
		{name: "kubelet-env-empty", template: "kubelet-env", settings: `{"kubernetes": {}}`},
		{name: "kubelet-bootstrap-kubeconfig", template: "kubelet-bootstrap-kubeconfig", settings: `{"kubernetes": {"cluster-name": "prod", "api-server": "https://10.0.2.2:6443", "bootstrap-token": "abcdef.0123456789abcdef"}}`},
		{name: "kubernetes-ca", template: "kubernetes-ca", settings: `{"kubernetes": {"cluster-certificate": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="}}`},
		{name: "kubernetes-ca-unset", template: "kubernetes-ca", settings: `{"kubernetes": {}}`},
		{name: "containerd-k8s", template: "containerd-config-k8s", settings: `{"kubernetes": {"pod-infra-container-image": "ghcr.io/gantry-os/gantry-pause:v0.1.0"},
			"container-registry": {"mirrors": [{"registry": "ghcr.io", "endpoint": ["http://10.0.2.2:5000"]}], "credentials": [{"registry": "registry.example.com", "username": "me", "password": "pw"}]}}`},
		{name: "cni-bridge", template: "cni-bridge", settings: `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := Load(filepath.Join(templatesDir, tt.template))
			if err != nil {
				t.Fatal(err)
			}
			var ctx Context
			if err := json.Unmarshal([]byte(`{"settings": `+tt.settings+`, "os": `+osRel+`}`), &ctx); err != nil {
				t.Fatal(err)
			}
			if tt.extra != "" {
				var extra map[string]any
				json.Unmarshal([]byte(tt.extra), &extra)
				for k, v := range extra {
					ctx[k] = v
				}
			}
			got, err := Execute(tmpl, ctx)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tt.name+".expected")
			if *update {
				os.WriteFile(golden, got, 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s rendered:\n%s\nwant (%s):\n%s", tt.template, got, golden, want)
			}
		})
	}
}

// TestTemplatesFailLoudly checks that a template whose required setting is
// missing fails instead of rendering an empty value.
func TestTemplatesFailLoudly(t *testing.T) {
	for _, name := range []string{"motd", "kubelet-config"} {
		tmpl, err := Load(filepath.Join(templatesDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if out, err := Execute(tmpl, Context{"settings": map[string]any{}, "os": map[string]any{}}); err == nil {
			t.Errorf("%s rendered without its setting: %q", name, out)
		}
	}
}
