// Command gantry-init is /init in Gantry's initramfs: it opens the root
// filesystem of the chosen partition set through dm-verity and switches to
// it. The boot logic is package initrd/bootinit; see docs/boot.md.
//
// Build it static: CGO_ENABLED=0 go build -trimpath -ldflags='-s -w'.
package main

import (
	"context"
	"os"

	"github.com/gantry-os/gantry/internal/boot/initrd/bootinit"
)

func main() {
	con := bootinit.Console{W: os.Stdout}
	err := bootinit.Boot(context.Background(), con, os.Args, os.Environ())
	bootinit.Fail(con, err)
}
