// Command signpost shows and changes which partition set GRUB boots; see
// package signpost.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/update/signpost"
)

func main() { os.Exit(signpost.Main(context.Background(), os.Args[1:])) }
