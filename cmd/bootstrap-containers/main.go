// Command bootstrap-containers runs settings.bootstrap-containers at boot; see
// package internal/node/bootstrap.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/node/bootstrap"
)

func main() { os.Exit(bootstrap.ContainersMain(context.Background(), os.Args[1:])) }
