package hostcontainers

import (
	"context"
	"fmt"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
)

// DBus is Systemd over systemd's D-Bus API.
type DBus struct{}

func (DBus) job(ctx context.Context, unit string, wait bool, call func(*sddbus.Conn, chan<- string) (int, error)) error {
	conn, err := sddbus.NewWithContext(ctx)
	if err != nil {
		return fmt.Errorf("connect to systemd: %w", err)
	}
	defer conn.Close()
	var ch chan string
	if wait {
		ch = make(chan string, 1)
	}
	if _, err := call(conn, ch); err != nil {
		return fmt.Errorf("%s: %w", unit, err)
	}
	if !wait {
		return nil
	}
	select {
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("%s: job %s", unit, res)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", unit, ctx.Err())
	}
}

// Start implements Systemd.
func (d DBus) Start(ctx context.Context, unit string, wait bool) error {
	return d.job(ctx, unit, wait, func(c *sddbus.Conn, ch chan<- string) (int, error) {
		return c.StartUnitContext(ctx, unit, "replace", ch)
	})
}

// Stop implements Systemd.
func (d DBus) Stop(ctx context.Context, unit string) error {
	return d.job(ctx, unit, true, func(c *sddbus.Conn, ch chan<- string) (int, error) {
		return c.StopUnitContext(ctx, unit, "replace", ch)
	})
}
