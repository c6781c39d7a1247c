// Command updog finds, downloads and applies OS updates; see package updog.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/update/updog"
)

func main() { os.Exit(updog.Main(context.Background(), os.Args[1:], updog.OpenSignpost)) }
