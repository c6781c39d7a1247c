package updog

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gantry-os/gantry/internal/network/proxy"
)

// RepoSettings is settings.updates as the node's updater reads it. updog
// (through the API) and the update API (from the datastore) both read it
// with ParseRepoSettings and Apply, so they agree on every key and on what
// a missing repository is.
type RepoSettings struct {
	MetadataBaseURL string  `json:"metadata-base-url"`
	TargetsBaseURL  string  `json:"targets-base-url"`
	Seed            *uint32 `json:"seed"`
	VersionLock     string  `json:"version-lock"`
	IgnoreWaves     *bool   `json:"ignore-waves"`
}

// ErrNoRepository is what a node without repository URLs gets.
var ErrNoRepository = errors.New("no repository: set settings.updates.metadata-base-url and targets-base-url")

// ParseRepoSettings reads the settings.updates object; empty or null input
// is no settings.
func ParseRepoSettings(updates []byte) (RepoSettings, error) {
	var s RepoSettings
	if len(updates) == 0 || string(updates) == "null" {
		return s, nil
	}
	if err := json.Unmarshal(updates, &s); err != nil {
		return s, fmt.Errorf("settings.updates: %w", err)
	}
	return s, nil
}

// Apply fills cfg from the settings where cfg has no value of its own (the
// command line's flags win), and reports ErrNoRepository when either URL is
// still missing.
func (s RepoSettings) Apply(cfg *Config) error {
	if cfg.MetadataBaseURL == "" {
		cfg.MetadataBaseURL = s.MetadataBaseURL
	}
	if cfg.TargetsBaseURL == "" {
		cfg.TargetsBaseURL = s.TargetsBaseURL
	}
	if s.Seed != nil {
		cfg.Seed = *s.Seed
	}
	if cfg.VersionLock == "" {
		cfg.VersionLock = s.VersionLock
	}
	if s.IgnoreWaves != nil && *s.IgnoreWaves {
		cfg.IgnoreWaves = true
	}
	return cfg.RequireRepository()
}

// Set makes cfg's repository fields the settings' (the apiserver, which
// has no flags for them, reads the settings at every update command: a
// change applies at the next one).
func (s RepoSettings) Set(cfg *Config) error {
	cfg.MetadataBaseURL, cfg.TargetsBaseURL, cfg.VersionLock, cfg.IgnoreWaves = "", "", "", false
	return s.Apply(cfg)
}

// RequireRepository reports ErrNoRepository unless both URLs are set.
func (cfg *Config) RequireRepository() error {
	if cfg.MetadataBaseURL == "" || cfg.TargetsBaseURL == "" {
		return ErrNoRepository
	}
	return nil
}

// ProxySettings reads settings.network's proxy (and, on Kubernetes nodes,
// settings.kubernetes' automatic no-proxy entries) from the JSON of the
// settings object; nil or empty input is no proxy.
func ProxySettings(settings []byte) (proxy.Settings, error) {
	var doc struct {
		Network    proxy.Settings `json:"network"`
		Kubernetes struct {
			APIServer     string `json:"api-server"`
			ClusterDomain string `json:"cluster-domain"`
		} `json:"kubernetes"`
	}
	if len(settings) == 0 || string(settings) == "null" {
		return proxy.Settings{}, nil
	}
	if err := json.Unmarshal(settings, &doc); err != nil {
		return proxy.Settings{}, fmt.Errorf("settings.network: %w", err)
	}
	s := doc.Network
	s.APIServer, s.ClusterDomain = doc.Kubernetes.APIServer, doc.Kubernetes.ClusterDomain
	return s, nil
}

// ApplyProxy sets cfg's proxy from the settings object's JSON.
func ApplyProxy(settings []byte, cfg *Config) error {
	s, err := ProxySettings(settings)
	if err != nil {
		return err
	}
	f, err := s.Func()
	if err != nil {
		return err
	}
	cfg.Proxy = f
	return nil
}
