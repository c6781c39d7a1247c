// Command gantry-control serves the node's API over mutual TLS from the
// control container; see package internal/node/control.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/node/control"
)

func main() { os.Exit(control.Main(context.Background(), os.Args[1:])) }
