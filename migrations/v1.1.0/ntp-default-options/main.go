// Command migrate_v1.1.0_ntp-default-options updates the default NTP server
// options from 1.0.0's ["iburst"] to 1.1.0's ["iburst", "minpoll 4"], which
// makes chrony poll more often while it settles after boot.
//
// Only the untouched default is replaced: a node whose options the user set
// keeps them. The migration runs on live data and on pending transactions,
// so the defaults storewolf left in the launch transaction are updated too.
// A downgrade turns the 1.1.0 default back into 1.0.0's.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/pkg/migration"
)

func main() {
	os.Exit(migration.Run(context.Background(), migration.ReplaceList{
		Setting: "settings.ntp.options",
		Old:     []string{"iburst"},
		New:     []string{"iburst", "minpoll 4"},
	}, os.Args[1:]))
}
