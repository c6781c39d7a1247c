// Command power-button powers the node off cleanly when the ACPI power
// button is pressed; see package powerbutton.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/boot/powerbutton"
)

func main() { os.Exit(powerbutton.Main(context.Background(), os.Args[1:])) }
