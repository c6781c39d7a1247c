// Command migrate_v1.1.0_add-ntp-max-sources accompanies the setting
// settings.ntp.max-sources that Gantry 1.1.0 adds.
//
// On upgrade there is nothing to do: 1.1.0's storewolf adds the default and
// its metadata. On downgrade the key and its metadata are removed, because
// 1.0.0's model does not know it and its API would refuse the settings.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/pkg/migration"
)

func main() {
	os.Exit(migration.Run(context.Background(), migration.AddSettings{"settings.ntp.max-sources"}, os.Args[1:]))
}
