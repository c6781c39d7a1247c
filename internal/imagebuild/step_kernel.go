package imagebuild

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
)

// stepKernel takes the kernel and systemd-boot out of the tree, keeps the
// modules the variant names (with their dependencies) and writes their
// indexes (kernel.go).
func stepKernel(ctx context.Context, b *builder) (string, error) {
	b.vmlinuz = filepath.Join(b.work, "vmlinuz")
	k, err := takeKernel(b.st, b.vmlinuz)
	b.bootLoader = filepath.Join(b.work, "systemd-bootx64.efi")
	if err == nil {
		err = takeBootLoader(b.st, b.bootLoader)
	}
	if err == nil {
		err = selectModules(b.st, k, b.v.Kernel.Modules, append(slices.Clone(b.v.Kernel.InitramfsModules), SelectorModules...))
	}
	if err == nil {
		err = depmod(ctx, b.st, k)
	}
	if err != nil {
		return "", err
	}
	b.k = k
	return fmt.Sprintf("kernel %s, %d of %d modules kept", k.Release, k.Kept, k.Total), nil
}
