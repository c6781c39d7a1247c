package hostctr

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/containerd/containerd/v2/core/remotes/docker"
)

// RegistryConfig is host-ctr's registry configuration, the file
// /etc/host-containers/host-ctr.toml that settings-applier renders from
// settings.container-registry:
//
//	[mirrors."docker.io"]
//	endpoints = ["https://mirror.example.com"]
//	[creds."registry.example.com"]
//	username = "..."
//	password = "..."
type RegistryConfig struct {
	Mirrors map[string]Mirror     `toml:"mirrors"`
	Creds   map[string]Credential `toml:"creds"`
}

// Mirror lists the endpoints tried, in order, before the registry itself.
type Mirror struct {
	Endpoints []string `toml:"endpoints"`
}

// Credential authenticates to a registry: a user name and password, auth
// (base64 of user:password) or an identity (refresh) token.
type Credential struct {
	Username      string `toml:"username"`
	Password      string `toml:"password"`
	Auth          string `toml:"auth"`
	IdentityToken string `toml:"identitytoken"`
}

// LoadRegistryConfig reads a registry configuration file.
func LoadRegistryConfig(path string) (RegistryConfig, error) {
	var c RegistryConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read registry config: %w", err)
	}
	md, err := toml.Decode(string(b), &c)
	if err != nil {
		return c, fmt.Errorf("registry config %s: %w", path, err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		return c, fmt.Errorf("registry config %s: unknown key %s", path, u[0])
	}
	for reg, m := range c.Mirrors {
		for _, e := range m.Endpoints {
			if _, _, err := endpointURL(e); err != nil {
				return c, fmt.Errorf("registry config %s: mirrors.%q: %w", path, reg, err)
			}
		}
	}
	return c, nil
}

// defaultHost is the host a registry's API is served on: Docker Hub's
// name docker.io is served by registry-1.docker.io.
func defaultHost(registry string) string {
	if registry == "docker.io" {
		return "registry-1.docker.io"
	}
	return registry
}

// isLoopback reports whether a host (with or without port) is the local
// machine, which is reached over plain HTTP when no scheme is given.
func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}

// endpointURL parses a mirror endpoint: without a scheme it is https
// (http for loopback), an empty path is /v2.
func endpointURL(e string) (*url.URL, bool, error) {
	raw := e
	if !strings.Contains(raw, "://") {
		host := strings.SplitN(raw, "/", 2)[0]
		if isLoopback(host) {
			raw = "http://" + raw
		} else {
			raw = "https://" + raw
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, false, fmt.Errorf("endpoint %q is not a URL", e)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, false, fmt.Errorf("endpoint %q: scheme must be http or https", e)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v2"
	}
	return u, u.Scheme == "http", nil
}

// credentials returns the user name and secret for a host: the host's own
// entry, else none. A token is returned with an empty user name, as
// containerd's authorizer expects for refresh tokens.
func (c RegistryConfig) credentials(host string) (string, string, error) {
	cred, ok := c.Creds[host]
	if !ok && host == "registry-1.docker.io" {
		cred, ok = c.Creds["docker.io"]
	}
	if !ok {
		return "", "", nil
	}
	switch {
	case cred.IdentityToken != "":
		return "", cred.IdentityToken, nil
	case cred.Auth != "":
		b, err := base64.StdEncoding.DecodeString(cred.Auth)
		if err != nil {
			return "", "", fmt.Errorf("credentials for %s: auth is not base64: %w", host, err)
		}
		user, pass, ok := strings.Cut(string(b), ":")
		if !ok {
			return "", "", fmt.Errorf("credentials for %s: auth is not base64 of user:password", host)
		}
		return user, pass, nil
	}
	return cred.Username, cred.Password, nil
}

// Hosts returns containerd's resolver configuration: for a registry, its
// mirrors (or the "*" mirrors when it has none) and then the registry
// itself, each allowed to resolve and pull only. A mirror is sent the
// registry's credentials when it has none of its own.
func (c RegistryConfig) Hosts(client *http.Client) docker.RegistryHosts {
	return func(registry string) ([]docker.RegistryHost, error) {
		eps, ok := c.Mirrors[registry]
		if !ok {
			eps = c.Mirrors["*"]
		}
		var hosts []docker.RegistryHost
		for _, e := range eps.Endpoints {
			u, plain, err := endpointURL(e)
			if err != nil {
				return nil, fmt.Errorf("mirror of %s: %w", registry, err)
			}
			hosts = append(hosts, c.host(client, u.Host, u.Path, plain, defaultHost(registry)))
		}
		def := defaultHost(registry)
		scheme := "https"
		if isLoopback(def) {
			scheme = "http"
		}
		return append(hosts, c.host(client, def, "/v2", scheme == "http", def)), nil
	}
}

func (c RegistryConfig) host(client *http.Client, host, path string, plain bool, registryHost string) docker.RegistryHost {
	creds := func(h string) (string, string, error) {
		u, p, err := c.credentials(h)
		if err == nil && u == "" && p == "" && h != registryHost {
			return c.credentials(registryHost)
		}
		return u, p, err
	}
	scheme := "https"
	if plain {
		scheme = "http"
	}
	return docker.RegistryHost{
		Client:       client,
		Authorizer:   docker.NewDockerAuthorizer(docker.WithAuthClient(client), docker.WithAuthCreds(creds)),
		Host:         host,
		Scheme:       scheme,
		Path:         path,
		Capabilities: docker.HostCapabilityResolve | docker.HostCapabilityPull,
	}
}
