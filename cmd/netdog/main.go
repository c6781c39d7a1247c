// Command netdog configures and reports the node's network; see package
// internal/node/netdog.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/node/netdog"
)

func main() { os.Exit(netdog.Main(context.Background(), os.Args[1:])) }
