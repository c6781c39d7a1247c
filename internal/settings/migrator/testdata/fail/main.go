// Command fail is a test-only migration that always fails, in both
// directions, after reading the source.
package main

import (
	"context"
	"errors"
	"os"

	"github.com/gantry-os/gantry/pkg/migration"
)

type fail struct{}

func (fail) Forward(*migration.Data) error  { return errors.New("this migration always fails") }
func (fail) Backward(*migration.Data) error { return errors.New("this migration always fails") }

func main() { os.Exit(migration.Run(context.Background(), fail{}, os.Args[1:])) }
