package updog

import (
	"errors"
	"testing"
)

func TestRepoSettings(t *testing.T) {
	seed := uint32(7)
	tests := []struct {
		name    string
		updates string
		flags   Config
		want    Config
		err     error
	}{
		{"all from settings", `{"metadata-base-url":"http://r/metadata/","targets-base-url":"http://r/targets/","seed":7,"version-lock":"v1.2.0","ignore-waves":true}`,
			Config{}, Config{MetadataBaseURL: "http://r/metadata/", TargetsBaseURL: "http://r/targets/", Seed: seed, VersionLock: "v1.2.0", IgnoreWaves: true}, nil},
		{"flags win", `{"metadata-base-url":"http://r/metadata/","targets-base-url":"http://r/targets/","version-lock":"latest"}`,
			Config{MetadataBaseURL: "http://f/metadata/", VersionLock: "v2.0.0"},
			Config{MetadataBaseURL: "http://f/metadata/", TargetsBaseURL: "http://r/targets/", VersionLock: "v2.0.0"}, nil},
		{"no settings", ``, Config{}, Config{}, ErrNoRepository},
		{"null", `null`, Config{}, Config{}, ErrNoRepository},
		{"one URL", `{"metadata-base-url":"http://r/metadata/"}`, Config{}, Config{MetadataBaseURL: "http://r/metadata/"}, ErrNoRepository},
		{"empty URLs are missing", `{"metadata-base-url":"","targets-base-url":""}`, Config{}, Config{}, ErrNoRepository},
		{"ignore-waves false keeps the flag", `{"metadata-base-url":"m","targets-base-url":"t","ignore-waves":false}`,
			Config{IgnoreWaves: true}, Config{MetadataBaseURL: "m", TargetsBaseURL: "t", IgnoreWaves: true}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseRepoSettings([]byte(tc.updates))
			if err != nil {
				t.Fatal(err)
			}
			cfg := tc.flags
			if err := s.Apply(&cfg); !errors.Is(err, tc.err) {
				t.Errorf("Apply: %v, want %v", err, tc.err)
			}
			if cfg.MetadataBaseURL != tc.want.MetadataBaseURL || cfg.TargetsBaseURL != tc.want.TargetsBaseURL || cfg.Seed != tc.want.Seed ||
				cfg.VersionLock != tc.want.VersionLock || cfg.IgnoreWaves != tc.want.IgnoreWaves {
				t.Errorf("config %+v, want %+v", cfg, tc.want)
			}
		})
	}
	if _, err := ParseRepoSettings([]byte(`{"seed":"lots"}`)); err == nil {
		t.Error("a seed that is not a number parsed")
	}
}

// TestRepoSettingsSet: the apiserver keeps one Config across update
// commands; a settings change (another repository, waves back on) must
// reach the next command.
func TestRepoSettingsSet(t *testing.T) {
	cfg := Config{}
	for _, step := range []struct {
		updates string
		want    Config
	}{
		{`{"metadata-base-url":"http://a/m/","targets-base-url":"http://a/t/","ignore-waves":true,"version-lock":"v1.0.0"}`,
			Config{MetadataBaseURL: "http://a/m/", TargetsBaseURL: "http://a/t/", IgnoreWaves: true, VersionLock: "v1.0.0"}},
		{`{"metadata-base-url":"http://b/m/","targets-base-url":"http://b/t/","ignore-waves":false,"version-lock":"latest"}`,
			Config{MetadataBaseURL: "http://b/m/", TargetsBaseURL: "http://b/t/", VersionLock: "latest"}},
	} {
		s, err := ParseRepoSettings([]byte(step.updates))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Set(&cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.MetadataBaseURL != step.want.MetadataBaseURL || cfg.TargetsBaseURL != step.want.TargetsBaseURL ||
			cfg.IgnoreWaves != step.want.IgnoreWaves || cfg.VersionLock != step.want.VersionLock {
			t.Fatalf("after %s: %+v", step.updates, cfg)
		}
	}
}
