// Command preload-images imports the OS image's container images into
// containerd at boot; see package internal/node/preload.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/node/preload"
)

func main() { os.Exit(preload.Main(context.Background(), os.Args[1:])) }
