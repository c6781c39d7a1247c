package imagebuild

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// stepOutputs hashes the outputs, writes build.json and moves everything
// into the output folder, removing disk images of earlier builds.
func stepOutputs(ctx context.Context, b *builder) (string, error) {
	in, v, k, vr := b.in, b.v, b.k, b.vr
	if err := os.WriteFile(filepath.Join(b.work, "roothash"), []byte(vr.RootHash+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("outputs: %w", err)
	}
	names := []string{b.diskName, "esp.img", "boot.img", "root.img", "hash.img", "roothash", "vmlinuz", "initrd.img", "cmdline"}
	if b.dataName != "" {
		names = append(names, b.dataName)
	}
	sum := Summary{
		Variant: v.Name, Arch: v.Arch, Version: v.Version, BuildID: in.buildID, Epoch: in.epoch, GoVersion: b.goVersion,
		Kernel: k.Release, Cmdline: b.cmdline, RootHash: vr.RootHash, Salt: vr.Salt, DataBlocks: vr.DataBlocks,
		PartitionPlan: v.Image.PartitionPlan, OSImageSizeGiB: v.Image.OSImageSizeGiB,
		PackageCount: len(b.lock.Packages), Packages: b.lock.Packages, Commands: v.Gantry.Commands, Tools: b.installedTools, Images: b.preloaded,
		Root: RootSummary{
			Files: b.rootFiles, UncompressedBytes: b.rootBytes, CompressedBytes: b.rootSize, HashBytes: fileSize(b.hashImg),
			ModulesKept: k.Kept, ModulesShipped: k.Total, UnitsInstalled: b.units.installed, PrunedBytes: b.pruned.bytes,
			RemovedScripts: b.pruned.scripts, FlattenedOwners: len(b.st.foreignOwners),
		},
		Boot: BootSummary{VmlinuzBytes: fileSize(b.vmlinuz), InitrdBytes: b.initrdSize, ImageBytes: fileSize(b.bootImg)},
		ESP:  b.esp,
	}
	if sum.Root.RemovedScripts == nil {
		sum.Root.RemovedScripts = []string{}
	}
	var err error
	if sum.Outputs, err = hashFiles(b.work, names); err != nil {
		return "", fmt.Errorf("outputs: %w", err)
	}
	js, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return "", fmt.Errorf("outputs: build.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(b.work, "build.json"), append(js, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("outputs: %w", err)
	}
	// Disk images of earlier builds of this variant would not match the new
	// kernel command line (its root hash): remove them so nothing boots one.
	if stale, err := filepath.Glob(filepath.Join(in.out, fmt.Sprintf("gantry-%s-%s-*.img", v.Name, v.Arch))); err == nil {
		for _, f := range stale {
			os.Remove(f)
		}
	}
	for _, n := range append(names, "build.json") {
		if err := os.Rename(filepath.Join(b.work, n), filepath.Join(in.out, n)); err != nil {
			return "", fmt.Errorf("outputs: %w", err)
		}
	}
	b.sum = sum
	return fmt.Sprintf("%s: root %s, root hash %s", in.out, mb(b.rootSize), vr.RootHash[:16]+"…"), nil
}
