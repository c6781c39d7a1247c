package updog

import (
	"encoding/json"
	"errors"
	"fmt"
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

// RequireRepository reports ErrNoRepository unless both URLs are set.
func (cfg *Config) RequireRepository() error {
	if cfg.MetadataBaseURL == "" || cfg.TargetsBaseURL == "" {
		return ErrNoRepository
	}
	return nil
}
