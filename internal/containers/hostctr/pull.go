package hostctr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
)

// Snapshotter is the only snapshotter host-containerd has.
const Snapshotter = "overlayfs"

// Retry is the pull's retry policy. Bottlerocket's host-ctr retries 5 times,
// waiting 1 s doubling up to 30 s, plus 2-6 s of jitter each time.
type Retry struct {
	Attempts  int // retries after the first try
	Initial   time.Duration
	Max       time.Duration
	JitterMin time.Duration
	JitterMax time.Duration
}

// DefaultRetry is Bottlerocket's policy.
func DefaultRetry() Retry {
	return Retry{Attempts: 5, Initial: time.Second, Max: 30 * time.Second, JitterMin: 2 * time.Second, JitterMax: 6 * time.Second}
}

// Wait is the wait before retry n (0-based), without the jitter.
func (r Retry) Wait(n int) time.Duration {
	d := r.Initial
	for i := 0; i < n && d < r.Max; i++ {
		d *= 2
	}
	return min(d, r.Max)
}

func (r Retry) jitter() time.Duration {
	if r.JitterMax <= r.JitterMin {
		return r.JitterMin
	}
	return r.JitterMin + rand.N(r.JitterMax-r.JitterMin)
}

// NormalizeRef turns an image source into a full reference
// (docker.io/library/ubuntu:latest for "ubuntu").
func NormalizeRef(source string) (string, error) {
	named, err := reference.ParseDockerRef(source)
	if err != nil {
		return "", fmt.Errorf("source %q is not an image reference: %w", source, err)
	}
	return named.String(), nil
}

// permanent reports a pull error that a retry will not mend: the image or
// tag does not exist, or the registry refused the credentials.
func permanent(err error) bool {
	return errdefs.IsNotFound(err) || errors.Is(err, docker.ErrInvalidAuthorization) ||
		errdefs.IsInvalidArgument(err) || errdefs.IsPermissionDenied(err)
}

// Puller pulls images into host-containerd.
type Puller struct {
	Client *client.Client
	Hosts  docker.RegistryHosts
	Retry  Retry
	Log    *slog.Logger
}

// Pull fetches and unpacks ref. Transient failures (an unreachable
// registry, a server error) are retried; when they persist and an image of
// that name is already stored, the stored one is used, so that a host
// container restarts while its registry is down.
func (p Puller) Pull(ctx context.Context, ref string) (client.Image, error) {
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: p.Hosts})
	var err error
	for attempt := 0; ; attempt++ {
		var img client.Image
		img, err = p.Client.Pull(ctx, ref, client.WithPullUnpack, client.WithPullSnapshotter(Snapshotter),
			client.WithResolver(resolver))
		if err == nil {
			return img, nil
		}
		if ctx.Err() != nil || permanent(err) || attempt >= p.Retry.Attempts {
			break
		}
		wait := p.Retry.Wait(attempt) + p.Retry.jitter()
		p.Log.Warn("pull failed; retrying", "image", ref, "attempt", attempt+1, "wait", wait.Round(time.Millisecond).String(), "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("pull %s: %w (then %w)", ref, err, ctx.Err())
		case <-t.C:
		}
	}
	if !permanent(err) && ctx.Err() == nil {
		if img, gerr := p.Client.GetImage(ctx, ref); gerr == nil {
			if ok, _ := img.IsUnpacked(ctx, Snapshotter); ok {
				p.Log.Warn("pull failed; using the stored image", "image", ref, "error", err)
				return img, nil
			}
		}
	}
	return nil, fmt.Errorf("pull %s: %w", ref, err)
}
