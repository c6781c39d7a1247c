// Command api-bridge forwards TCP connections to the settings API's Unix
// socket on development nodes under QEMU; see package apibridge.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/devtools/apibridge"
)

func main() { os.Exit(apibridge.Main(context.Background(), os.Args[1:])) }
