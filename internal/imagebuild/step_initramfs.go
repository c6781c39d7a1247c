package imagebuild

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/gantry-os/gantry/internal/boot/initrd"
)

// stepInitramfs builds gantry-init's initramfs with the variant's
// initramfs modules.
func stepInitramfs(ctx context.Context, b *builder) (string, error) {
	b.initrdImg = filepath.Join(b.work, "initrd.img")
	err := initrd.Build(ctx, initrd.Options{
		Init:       filepath.Join(b.binDir, InitCommand),
		ModulesDir: b.st.abs(b.k.ModulesDir),
		Modules:    append([]string(nil), b.v.Kernel.InitramfsModules...),
		Out:        b.initrdImg,
		Epoch:      time.Unix(b.in.epoch, 0).UTC(),
	})
	if err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}
	b.initrdSize = fileSize(b.initrdImg)
	return fmt.Sprintf("%s, %d modules", mb(b.initrdSize), len(b.v.Kernel.InitramfsModules)), nil
}
