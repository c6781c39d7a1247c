// Command migrator migrates the datastore to the OS's version at boot; see
// package migrator.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/settings/migrator"
)

func main() { os.Exit(migrator.Main(context.Background(), os.Args[1:])) }
