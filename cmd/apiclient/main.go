// Command apiclient talks to Gantry's settings API; see package apiclient.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/node/apiclient"
)

func main() { os.Exit(apiclient.Main(context.Background(), os.Args[1:], apiclient.StdIO())) }
