package updog

import (
	"context"
	"fmt"
	"github.com/gantry-os/gantry/pkg/version"
	"io"
	"log/slog"

	"github.com/gantry-os/gantry/internal/update/manifest"
	"github.com/gantry-os/gantry/internal/update/updateapi"
)

// Region is a writable partition.
type Region interface {
	io.WriterAt
	Size() int64
	Sync() error
}

// BootSets is what updog needs of the A/B partition sets (signpost): each
// call changes the GPT and makes the change durable before it returns.
type BootSets interface {
	// ClearInactive makes the inactive set unbootable (priority, tries and
	// successful all 0) before anything is written into it.
	ClearInactive() error
	// InactivePartition opens the inactive set's "boot", "root" or "hash".
	InactivePartition(kind string) (Region, error)
	// MarkInactiveValid gives the inactive set one try (it still has
	// priority 0, so it does not boot until activated).
	MarkInactiveValid() error
	// UpgradeToInactive makes the inactive set boot next; CancelUpgrade undoes it.
	UpgradeToInactive() error
	CancelUpgrade() error
	Close() error
}

// Node is a node's updater: the repository client and its boot sets.
type Node struct {
	Config   Config
	OpenSets func() (BootSets, error)
	Progress Progress
	Logger   *slog.Logger
}

// Check refreshes the repository and returns every applicable update and
// the chosen one (nil when the node is up to date).
func (n *Node) Check(ctx context.Context, image *version.Semver, ignoreWaves bool) ([]manifest.Update, *manifest.Update, *Client, error) {
	c, err := Open(ctx, n.Config)
	if err != nil {
		return nil, nil, nil, err
	}
	chosen, err := c.Choose(image, ignoreWaves)
	if err != nil {
		return nil, nil, nil, err
	}
	return c.Applicable(ignoreWaves), chosen, c, nil
}

// WriteImage writes update u into the inactive set: the set is cleared
// first, the migrations cached, then root, boot and hash streamed and
// verified; only when all of that succeeded is the set marked valid. An
// error at any point leaves the inactive set unbootable and the active
// set untouched.
func (n *Node) WriteImage(ctx context.Context, c *Client, u *manifest.Update) error {
	if err := c.CheckTarget(u); err != nil {
		return err
	}
	sets, err := n.OpenSets()
	if err != nil {
		return err
	}
	defer sets.Close()
	if err := sets.ClearInactive(); err != nil {
		return fmt.Errorf("clear the inactive set: %w", err)
	}
	if _, err := c.CacheMigrations(ctx, u); err != nil {
		return err
	}
	for _, img := range []struct{ kind, target string }{{"root", u.Images.Root}, {"boot", u.Images.Boot}, {"hash", u.Images.Hash}} {
		if img.target == "" {
			return fmt.Errorf("update %s names no %s image", u.Version, img.kind)
		}
		part, err := sets.InactivePartition(img.kind)
		if err != nil {
			return err
		}
		if err := c.StreamTarget(ctx, img.target, part, part.Size(), n.Progress); err != nil {
			return fmt.Errorf("write the %s image: %w", img.kind, err)
		}
		// Durable before the set can be marked valid.
		if err := part.Sync(); err != nil {
			return fmt.Errorf("sync the %s partition: %w", img.kind, err)
		}
	}
	if err := sets.MarkInactiveValid(); err != nil {
		return fmt.Errorf("mark the inactive set valid: %w", err)
	}
	n.log().Info("update written to the inactive partitions", "version", u.Version)
	return nil
}

// Activate makes the written update boot next.
func (n *Node) Activate() error {
	return n.withSets(func(s BootSets) error { return s.UpgradeToInactive() })
}

// Revert undoes Activate before a reboot.
func (n *Node) Revert() error {
	return n.withSets(func(s BootSets) error { return s.CancelUpgrade() })
}

func (n *Node) withSets(f func(BootSets) error) error {
	sets, err := n.OpenSets()
	if err != nil {
		return err
	}
	defer sets.Close()
	return f(sets)
}

func (n *Node) log() *slog.Logger {
	if n.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return n.Logger
}

// UpdateAPI adapts a Node to the update API's commands. Configure, when
// set, refreshes the node's configuration (settings.updates) before each
// command, so a settings change takes effect at the next refresh.
type UpdateAPI struct {
	Node      *Node
	Configure func(ctx context.Context, cfg *Config) error
}

func (a UpdateAPI) configure(ctx context.Context) error {
	if a.Configure == nil {
		return nil
	}
	return a.Configure(ctx, &a.Node.Config)
}

// Refresh implements updateapi.Updater.
func (a UpdateAPI) Refresh(ctx context.Context) ([]manifest.Update, *manifest.Update, error) {
	if err := a.configure(ctx); err != nil {
		return nil, nil, err
	}
	avail, chosen, _, err := a.Node.Check(ctx, nil, false)
	return avail, chosen, err
}

// Prepare implements updateapi.Updater: it writes exactly the version the
// refresh chose (Bottlerocket re-derives it, which can differ).
func (a UpdateAPI) Prepare(ctx context.Context, chosen updateapi.Image) error {
	v, err := version.Parse(chosen.Version)
	if err != nil {
		return err
	}
	if err := a.configure(ctx); err != nil {
		return err
	}
	_, u, c, err := a.Node.Check(ctx, &v, true)
	if err != nil {
		return err
	}
	if u == nil {
		return fmt.Errorf("update %s is no longer offered", chosen.Version)
	}
	return a.Node.WriteImage(ctx, c, u)
}

// Activate implements updateapi.Updater.
func (a UpdateAPI) Activate(context.Context) error { return a.Node.Activate() }

// Deactivate implements updateapi.Updater.
func (a UpdateAPI) Deactivate(context.Context) error { return a.Node.Revert() }
