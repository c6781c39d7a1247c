// Command migrate_v1.1.0_replace-motd-template moves the motd configuration
// file to the template that Gantry 1.1.0 ships, /usr/share/templates/motd-v2.
//
// storewolf never overwrites a key that is already in the datastore, so a
// node upgraded from 1.0.0 would keep rendering /etc/motd from the old
// template path without this migration. A path the user changed is left
// alone; a downgrade puts the 1.0.0 path back.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/pkg/migration"
)

func main() {
	os.Exit(migration.Run(context.Background(), migration.ReplaceTemplate{
		File: "motd",
		Old:  "/usr/share/templates/motd",
		New:  "/usr/share/templates/motd-v2",
	}, os.Args[1:]))
}
