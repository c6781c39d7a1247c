package tufrepo

import (
	"context"
	"fmt"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// RefreshOptions control Refresh.
type RefreshOptions struct {
	// TimestampOnly re-signs only timestamp.json (the cheap, frequent
	// refresh an online timestamp key can do); otherwise targets, snapshot
	// and timestamp are all re-signed.
	TimestampOnly bool
	// Unsafe refreshes a repository whose targets, snapshot or timestamp
	// has already expired (pubsys's --unsafe-refresh).
	Unsafe bool
}

// Refresh re-signs the repository's metadata with bumped versions and new
// expirations, changing nothing else. It refuses an expired repository
// unless opts.Unsafe is set, and always refuses one whose root has expired
// (RotateRoot re-signs the root).
func (r *Repo) Refresh(ctx context.Context, opts RefreshOptions) (*Published, error) {
	unlock, err := lockRepo(r.dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := r.load()
	if err != nil {
		return nil, err
	}
	now := r.now()
	if !now.Before(st.root.Signed.Expires) {
		return nil, fmt.Errorf("refresh: root.json (version %d) expired at %s; re-sign it with rotate-root first (the current root keys may be given as both old and new keys)",
			st.root.Signed.Version, st.root.Signed.Expires.Format(time.RFC3339))
	}
	if err := checkNotExpired(st, now); err != nil && !opts.Unsafe {
		return nil, fmt.Errorf("refresh: %w; refusing to re-sign it without --unsafe-refresh", err)
	}
	set := publishAll
	if opts.TimestampOnly {
		set = publishTimestampOnly
		for role, exp := range map[string]time.Time{RoleTargets: st.targets.Signed.Expires, RoleSnapshot: st.snapshot.Signed.Expires} {
			if !now.Before(exp) {
				return nil, fmt.Errorf("refresh: %s expired at %s; a timestamp-only refresh cannot renew it", role, exp.Format(time.RFC3339))
			}
		}
	}
	return r.publish(ctx, st, set, r.signers(), nil)
}

// RotateOptions describe a new root.json.
type RotateOptions struct {
	// OldKeys are private keys of the current root role, at least its
	// threshold: the new root must be signed by them.
	OldKeys []*Key
	// NewRoot is the new root role. Threshold 0 keeps the current one. At
	// least the threshold of its keys must be private: the new root must
	// be signed by them too. It may share keys with the old role; giving
	// the same keys re-signs the root with a new version and expiry.
	NewRoot RoleKeys
	// Targets, Snapshot and Timestamp, when set, replace those roles' keys
	// (Threshold 0 keeps the current one) and the three roles are
	// re-signed: the replaced ones with these keys, the others with the
	// repository's Options.
	Targets, Snapshot, Timestamp *RoleKeys
}

// RotateRoot writes root version N+1 with new keys, signed by a threshold
// of the current root keys and by a threshold of the new ones, which is
// what a client following the root chain requires. The root's expiry is
// Options.Expires.Root from now.
func (r *Repo) RotateRoot(ctx context.Context, opts RotateOptions) (*Published, error) {
	unlock, err := lockRepo(r.dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := r.load()
	if err != nil {
		return nil, err
	}
	old := st.root
	if err := checkKeysInRole(old, RoleRoot, opts.OldKeys); err != nil {
		return nil, fmt.Errorf("old root key: %w", err)
	}
	oldSigners, err := signingKeys("current root", opts.OldKeys, old.Signed.Roles[RoleRoot].Threshold)
	if err != nil {
		return nil, err
	}

	b, err := old.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("copy root: %w", err)
	}
	next, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("copy root: %w", err)
	}
	next.Signed.Version++
	next.Signed.Expires = expiry(r.now(), r.opts.Expires.Root)
	next.Signed.ConsistentSnapshot = true

	replace := func(role string, rk RoleKeys) error {
		if rk.Threshold == 0 {
			rk.Threshold = old.Signed.Roles[role].Threshold
		}
		if _, err := checkRoleKeys("new "+role, rk); err != nil {
			return err
		}
		for _, id := range append([]string{}, next.Signed.Roles[role].KeyIDs...) {
			if err := next.Signed.RevokeKey(id, role); err != nil {
				return fmt.Errorf("remove %s key: %w", role, err)
			}
		}
		for _, k := range rk.Keys {
			if err := next.Signed.AddKey(k.Meta, role); err != nil {
				return fmt.Errorf("new %s key %s: %w", role, k.Path, err)
			}
		}
		next.Signed.Roles[role].Threshold = rk.Threshold
		return nil
	}
	if err := replace(RoleRoot, opts.NewRoot); err != nil {
		return nil, err
	}
	newSigners, err := signingKeys("new root", opts.NewRoot.Keys, next.Signed.Roles[RoleRoot].Threshold)
	if err != nil {
		return nil, err
	}
	keys := r.signers()
	changed := false
	for _, o := range []struct {
		role string
		rk   *RoleKeys
	}{{RoleTargets, opts.Targets}, {RoleSnapshot, opts.Snapshot}, {RoleTimestamp, opts.Timestamp}} {
		if o.rk == nil {
			continue
		}
		if err := replace(o.role, *o.rk); err != nil {
			return nil, err
		}
		keys[o.role] = o.rk.Keys
		changed = true
	}

	next.ClearSignatures()
	signed := map[string]bool{}
	for _, k := range append(oldSigners, newSigners...) {
		if signed[k.ID] {
			continue
		}
		signed[k.ID] = true
		if _, err := next.Sign(k.signer); err != nil {
			return nil, fmt.Errorf("sign root with %s: %w", k.Path, err)
		}
	}
	if err := old.VerifyDelegate(RoleRoot, next); err != nil {
		return nil, fmt.Errorf("the new root is not signed by a threshold of the current root keys: %w", err)
	}
	if err := next.VerifyDelegate(RoleRoot, next); err != nil {
		return nil, fmt.Errorf("the new root is not signed by a threshold of its own keys: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !changed {
		if err := r.writeRoot(next); err != nil {
			return nil, err
		}
		return &Published{
			RootVersion: next.Signed.Version, TargetsVersion: st.targets.Signed.Version,
			SnapshotVersion: st.snapshot.Signed.Version, TimestampVersion: st.timestamp.Signed.Version,
			Expires: (&state{next, st.targets, st.snapshot, st.timestamp}).expires(),
		}, nil
	}
	// New role keys: sign targets and snapshot under the new root, write
	// the root, then the timestamp that makes them current.
	st.root = next
	return r.publish(ctx, st, publishAll, keys, func() error { return r.writeRoot(next) })
}
