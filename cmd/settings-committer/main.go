// Command settings-committer commits the launch transaction between the
// boot steps; an empty transaction is success. See package committer.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/settings/committer"
)

func main() { os.Exit(committer.Main(context.Background(), os.Args[1:])) }
