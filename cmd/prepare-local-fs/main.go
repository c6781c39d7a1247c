// Command prepare-local-fs formats the node's PRIVATE and DATA partitions at
// first boot; see package localfs.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/boot/localfs"
)

func main() { os.Exit(localfs.Main(context.Background(), os.Args[1:])) }
