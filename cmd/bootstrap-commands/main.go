// Command bootstrap-commands runs settings.bootstrap-commands at boot; see
// package internal/node/bootstrap.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/node/bootstrap"
)

func main() { os.Exit(bootstrap.CommandsMain(context.Background(), os.Args[1:])) }
