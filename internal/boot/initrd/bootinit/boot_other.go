//go:build !linux

package bootinit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// Console prints gantry-init's messages to the console.
type Console struct {
	W io.Writer
}

// Printf prints one message.
func (c Console) Printf(format string, args ...any) {
	fmt.Fprintf(c.W, "gantry-init: %s\n", fmt.Sprintf(format, args...))
}

// Boot is Linux-only.
func Boot(ctx context.Context, con Console, args, env []string) error {
	return errors.New("gantry-init runs only on Linux")
}

// Fail prints err and exits.
func Fail(con Console, err error) {
	con.Printf("FATAL: %v", err)
	os.Exit(1)
}
