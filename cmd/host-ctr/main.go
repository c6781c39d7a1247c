// Command host-ctr runs host and bootstrap containers on host-containerd;
// see package internal/node/hostctr.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/node/hostctr"
)

func main() { os.Exit(hostctr.Main(context.Background(), os.Args[1:])) }
