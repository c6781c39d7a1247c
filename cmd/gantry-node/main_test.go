package main

import (
	"testing"

	"github.com/gantry-os/gantry/internal/boot/multicall"
)

// The table dispatches: plain names, none the binary's own, each with an
// entry point. (imagebuild's TestNodeCommands checks it against the
// variants.)
func TestCommandTable(t *testing.T) {
	if err := (multicall.Binary{Name: "gantry-node", Commands: commands()}).Check(); err != nil {
		t.Fatal(err)
	}
}
