package imagebuild

import (
	"context"
	"fmt"
	"path/filepath"
)

// stepConfigureRoot waits for the Gantry commands, then writes the accounts,
// the release and the image's data (rootfs.go), links the commands and
// installs Gantry's units (units.go).
func stepConfigureRoot(ctx context.Context, b *builder) (string, error) {
	if err := b.waitGo(); err != nil {
		return "", err
	}
	v := b.v
	acc, err := configureRoot(b.st, v, releaseInfo{variant: v.Name, version: v.Version, buildID: b.in.buildID, arch: v.Arch}, b.lock, b.in.rootJSON)
	if err == nil {
		err = installCommands(b.st, b.binDir, v.Gantry.Commands)
	}
	if err == nil {
		b.units, err = installUnits(b.st, v, []string{filepath.Join(b.in.source, "variants", "shared", "units"), filepath.Join(v.Dir, "units")})
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d users, %d groups, %d Gantry units, %d unit links", len(acc.users), len(acc.groups), len(b.units.installed), b.units.links), nil
}
