// Command host-containers carries settings.host-containers out; see
// package internal/node/hostcontainers.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/node/hostcontainers"
)

func main() { os.Exit(hostcontainers.Main(context.Background(), os.Args[1:])) }
