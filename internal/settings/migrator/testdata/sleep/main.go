// Command sleep is a test-only migration that announces itself on stderr
// and then sleeps for an hour (or until its context ends), so tests can
// time it out or kill the migrator under it.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/gantry-os/gantry/pkg/migration"
)

type sleep struct{ ctx context.Context }

func (s sleep) wait() error {
	fmt.Fprintf(os.Stderr, "sleeping pid=%d\n", os.Getpid())
	select {
	case <-time.After(time.Hour):
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s sleep) Forward(*migration.Data) error  { return s.wait() }
func (s sleep) Backward(*migration.Data) error { return s.wait() }

func main() {
	ctx := context.Background()
	os.Exit(migration.Run(ctx, sleep{ctx}, os.Args[1:]))
}
