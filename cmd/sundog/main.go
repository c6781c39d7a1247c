// Command sundog runs setting generators; see package sundog.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/settings/sundog"
)

func main() { os.Exit(sundog.Main(context.Background(), os.Args[1:])) }
