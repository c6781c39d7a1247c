// Command gantry-disks formats and mounts the node's ephemeral disks from
// the disks bootstrap container; see package internal/node/disks.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/node/disks"
)

func main() { os.Exit(disks.Main(context.Background(), os.Args[1:])) }
