// Command gantry-node is every Gantry command the node runs, in one
// binary: the image links /usr/bin/<command> to /usr/bin/gantry-node, and
// the name it is started under picks the command (see package multicall).
// `gantry-node --list` prints the commands; the image builder checks a
// variant's [gantry] commands against it.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/boot/localfs"
	"github.com/gantry-os/gantry/internal/boot/multicall"
	"github.com/gantry-os/gantry/internal/boot/powerbutton"
	"github.com/gantry-os/gantry/internal/devtools/apibridge"
	"github.com/gantry-os/gantry/internal/node/apiclient"
	"github.com/gantry-os/gantry/internal/node/bootstrap"
	"github.com/gantry-os/gantry/internal/node/hostcontainers"
	"github.com/gantry-os/gantry/internal/node/hostctr"
	"github.com/gantry-os/gantry/internal/node/netdog"
	"github.com/gantry-os/gantry/internal/node/preload"
	"github.com/gantry-os/gantry/internal/settings/apiserver"
	"github.com/gantry-os/gantry/internal/settings/applier"
	"github.com/gantry-os/gantry/internal/settings/committer"
	"github.com/gantry-os/gantry/internal/settings/earlyboot"
	"github.com/gantry-os/gantry/internal/settings/generator"
	"github.com/gantry-os/gantry/internal/settings/migrator"
	"github.com/gantry-os/gantry/internal/settings/storewolf"
	"github.com/gantry-os/gantry/internal/settings/sundog"
	"github.com/gantry-os/gantry/internal/update/signpost"
	"github.com/gantry-os/gantry/internal/update/updog"
)

// commands are the node's commands by the names the units run them as.
func commands() map[string]multicall.Func {
	return map[string]multicall.Func{
		"api-bridge": apibridge.Main,
		"apiclient": func(ctx context.Context, args []string) int {
			return apiclient.Main(ctx, args, apiclient.StdIO())
		},
		"apiserver":            apiserver.Main,
		"bootstrap-commands":   bootstrap.CommandsMain,
		"bootstrap-containers": bootstrap.ContainersMain,
		"early-boot-config":    earlyboot.Main,
		"host-containers":      hostcontainers.Main,
		"host-ctr":             hostctr.Main,
		"migrator":             migrator.Main,
		"netdog":               netdog.Main,
		"power-button":         powerbutton.Main,
		"prepare-local-fs":     localfs.Main,
		"preload-images":       preload.Main,
		"settings-applier":     applier.Main,
		"settings-committer":   committer.Main,
		"settings-generator":   generator.Main,
		"signpost":             signpost.Main,
		"storewolf":            storewolf.Main,
		"sundog":               sundog.Main,
		"updog": func(ctx context.Context, args []string) int {
			return updog.Main(ctx, args, updog.OpenSignpost)
		},
	}
}

func main() {
	os.Exit(multicall.Binary{Name: "gantry-node", Commands: commands()}.Run(context.Background(), os.Args))
}
