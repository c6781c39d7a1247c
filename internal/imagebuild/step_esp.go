package imagebuild

import (
	"context"
	"fmt"
	"path/filepath"
)

// stepESP makes the EFI system partition (esp.go): systemd-boot, the kernel
// and the selector initramfs.
func stepESP(ctx context.Context, b *builder) (string, error) {
	img, esp, err := buildESP(ctx, b.work, b.in, b.k, b.st.abs(b.k.ModulesDir), filepath.Join(b.binDir, InitCommand), b.bootLoader, b.vmlinuz)
	if err != nil {
		return "", err
	}
	b.espImg, b.esp = img, esp
	return fmt.Sprintf("%s: systemd-boot, vmlinuz, selector initramfs %s", mb(esp.ImageBytes), mb(esp.SelectorBytes)), nil
}
