// Command gantry-admin is the admin container's; see package internal/node/admin.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/node/admin"
)

func main() { os.Exit(admin.AdminMain(context.Background(), os.Args[1:])) }
