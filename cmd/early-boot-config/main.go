// Command early-boot-config sends a node's first-boot user data to the
// settings API; see package earlyboot.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/settings/earlyboot"
)

func main() { os.Exit(earlyboot.Main(context.Background(), os.Args[1:])) }
