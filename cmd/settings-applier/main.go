// Command settings-applier renders configuration files and restarts
// services for committed settings; see package applier.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/settings/applier"
)

func main() { os.Exit(applier.Main(context.Background(), os.Args[1:])) }
