// Command settings-generator prints generated setting values for sundog;
// see package generator.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/settings/generator"
)

func main() { os.Exit(generator.Main(context.Background(), os.Args[1:])) }
