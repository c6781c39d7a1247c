// Package proxy owns what settings.network.https-proxy and no-proxy mean:
// the no-proxy list with Bottlerocket's automatic entries (localhost and
// 127.0.0.1 always; on Kubernetes nodes the API server's host and
// .<cluster-domain>), and the proxy function of Gantry's own HTTP clients
// (updog). The configuration template of containerd's and the host
// containers' environment uses the same list (render's noProxy helper).
package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpproxy"
)

// Settings are the settings a proxy depends on.
type Settings struct {
	// HTTPSProxy is settings.network.https-proxy; empty means no proxy.
	HTTPSProxy string `json:"https-proxy"`
	// NoProxy is settings.network.no-proxy.
	NoProxy []string `json:"no-proxy"`
	// APIServer and ClusterDomain are settings.kubernetes.api-server and
	// cluster-domain, on Kubernetes nodes.
	APIServer     string `json:"-"`
	ClusterDomain string `json:"-"`
}

// NoProxyList is the user's no-proxy entries followed by the automatic
// ones, without duplicates.
func (s Settings) NoProxyList() []string {
	out := []string{}
	seen := map[string]bool{}
	add := func(v string) {
		if v = strings.TrimSpace(v); v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for _, v := range s.NoProxy {
		add(v)
	}
	add("localhost")
	add("127.0.0.1")
	if s.APIServer != "" {
		if u, err := url.Parse(s.APIServer); err == nil && u.Hostname() != "" {
			add(u.Hostname())
		}
	}
	if s.ClusterDomain != "" {
		add("." + s.ClusterDomain)
	}
	return out
}

// Func is the proxy function of an http.Transport: every request, http and
// https alike, goes through the proxy unless its host is in the no-proxy
// list. Nil when there is no proxy (direct connections; the process
// environment is not consulted).
func (s Settings) Func() (func(*http.Request) (*url.URL, error), error) {
	if s.HTTPSProxy == "" {
		return nil, nil
	}
	p := s.HTTPSProxy
	if !strings.Contains(p, "://") {
		p = "http://" + p
	}
	if u, err := url.Parse(p); err != nil || u.Host == "" {
		return nil, fmt.Errorf("settings.network.https-proxy %q: not a proxy URL", s.HTTPSProxy)
	}
	cfg := httpproxy.Config{HTTPProxy: p, HTTPSProxy: p, NoProxy: strings.Join(s.NoProxyList(), ",")}
	f := cfg.ProxyFunc()
	return func(r *http.Request) (*url.URL, error) { return f(r.URL) }, nil
}
