// Command apiserver serves Gantry's settings API; see package apiserver.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/settings/apiserver"
)

func main() { os.Exit(apiserver.Main(context.Background(), os.Args[1:])) }
