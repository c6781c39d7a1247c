package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/gantry-os/gantry/pkg/version"
	"log/slog"
	"maps"
	"os"
	"os/exec"

	"github.com/gantry-os/gantry/internal/update/updateapi"
	"github.com/gantry-os/gantry/internal/update/updog"
	"github.com/gantry-os/gantry/pkg/datastore"
	"github.com/gantry-os/gantry/pkg/osrelease"
)

// UpdateOptions say where the node's update machinery lives.
type UpdateOptions struct {
	StatusDir     string // tmpfs directory for status.json and the lock
	RootJSON      string // the trusted root.json shipped in the image
	MetadataDir   string
	MigrationsDir string
	Disk, Active  string // partition sets (empty: the running root's disk)
}

// NewUpdates builds the update API's manager over updog for this server's
// datastore: settings.updates are read at every command. It returns nil
// when the image ships no root.json (no repository to trust).
func NewUpdates(ctx context.Context, store *datastore.Store, rel osrelease.Release, o UpdateOptions, log *slog.Logger) (*updateapi.Manager, error) {
	if _, err := os.Stat(o.RootJSON); err != nil {
		log.Info("no trusted root.json; the update API is off", "root_json", o.RootJSON)
		return nil, nil
	}
	running, err := version.Parse(rel.VersionID)
	if err != nil {
		return nil, fmt.Errorf("updates need the running version: %w", err)
	}
	node := &updog.Node{
		Config:   updog.Config{TrustedRoot: o.RootJSON, MetadataDir: o.MetadataDir, MigrationsDir: o.MigrationsDir, Release: rel},
		OpenSets: updog.OpenSignpost(o.Disk, o.Active),
		Logger:   log,
	}
	api := updog.UpdateAPI{Node: node, Configure: func(ctx context.Context, cfg *updog.Config) error {
		return settingsUpdates(ctx, store, cfg)
	}}
	return updateapi.New(ctx, o.StatusDir, api, updateapi.RunningImage(rel.VariantID, rel.Arch, running), log)
}

// settingsUpdates reads settings.updates from live data into cfg, with the
// reader updog uses (updog.RepoSettings).
func settingsUpdates(ctx context.Context, store *datastore.Store, cfg *updog.Config) error {
	pairs, err := store.GetPrefix(ctx, datastore.Live, "settings.updates.")
	if err != nil {
		return err
	}
	tree, err := datastore.Unflatten(pairs, 2)
	if err != nil {
		return err
	}
	doc, err := json.Marshal(tree)
	if err != nil {
		return err
	}
	s, err := updog.ParseRepoSettings(doc)
	if err != nil {
		return err
	}
	if err := s.Set(cfg); err != nil {
		return err
	}
	// The proxy: settings.network, and settings.kubernetes for the
	// automatic no-proxy entries.
	pairs = map[string]json.RawMessage{}
	for _, prefix := range []string{"settings.network.", "settings.kubernetes."} {
		p, err := store.GetPrefix(ctx, datastore.Live, prefix)
		if err != nil {
			return err
		}
		maps.Copy(pairs, p)
	}
	tree, err = datastore.Unflatten(pairs, 1)
	if err != nil {
		return err
	}
	if doc, err = json.Marshal(tree); err != nil {
		return err
	}
	return updog.ApplyProxy(doc, cfg)
}

// CommandReboot reboots by running a command. On a node it is
// `systemctl --no-block reboot`: systemd queues the reboot and the command
// returns, the handler answers, and systemd's SIGTERM then finds the
// answer sent or in flight (Serve drains requests in flight before it
// returns). A plain `systemctl reboot` would wait for the reboot itself,
// which stops the apiserver before it answers.
func CommandReboot(argv []string) func(context.Context) error {
	return func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %w: %s", argv, err, out)
		}
		return nil
	}
}
