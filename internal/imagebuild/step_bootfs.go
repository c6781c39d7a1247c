package imagebuild

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gantry-os/gantry/internal/boot/disklayout"
)

// stepBootFS writes the kernel command line (the variant's parameters and
// the root hash) and makes the BOOT filesystem: vmlinuz, initrd.img,
// cmdline.
func stepBootFS(ctx context.Context, b *builder) (string, error) {
	setA, err := b.in.layout.OS.Partitions.Set(disklayout.SetA)
	if err != nil {
		return "", fmt.Errorf("layout: %w", err)
	}
	b.cmdline = strings.Join(append(append([]string(nil), b.v.Kernel.Parameters...), "gantry.roothash="+b.vr.RootHash), " ")
	cmdlineFile := filepath.Join(b.work, "cmdline")
	if err := os.WriteFile(cmdlineFile, []byte(b.cmdline+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("cmdline: %w", err)
	}
	b.bootImg = filepath.Join(b.work, "boot.img")
	if err := makeExt4(ctx, b.work, b.bootImg, ext4Options{
		label: "GANTRY-BOOT", size: setA.Boot.Size, uuid: b.in.uuid("boot"), hashSeed: b.in.uuid("boot-hash-seed"), epoch: b.in.epoch,
		extra: []string{"-O", "^has_journal"},
		files: map[string]string{"vmlinuz": b.vmlinuz, "initrd.img": b.initrdImg, "cmdline": cmdlineFile},
	}); err != nil {
		return "", fmt.Errorf("boot filesystem: %w", err)
	}
	return fmt.Sprintf("%s partition image: vmlinuz, initrd.img, cmdline", mb(setA.Boot.Size)), nil
}
