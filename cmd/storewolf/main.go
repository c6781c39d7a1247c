// Command storewolf creates and fills the datastore; see package storewolf.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/settings/storewolf"
)

func main() { os.Exit(storewolf.Main(context.Background(), os.Args[1:])) }
