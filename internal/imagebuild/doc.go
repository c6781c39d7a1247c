// Package imagebuild builds Gantry's bootable disk images: `gantry build`.
//
// A build starts from a variant folder (variants/<name>/ or any folder given
// with --variant-dir) holding variant.toml, defaults.d, templates and
// optionally units and packages.lock. It then
//
//  1. resolves the variant's Debian packages with apt in a private root (the
//     host's sources, an empty dpkg status, nothing installed on the host)
//     and pins the closure in packages.lock (name=version=sha256);
//  2. fetches the .debs into a content-addressed cache, verifying each
//     against the lock;
//  3. extracts them into a staging tree with the /usr merge applied and no
//     maintainer scripts, then supplies what those scripts would have done
//     (accounts, machine-id, enabled units, module indexes);
//  4. adds the Gantry commands (links to one multi-call binary, gantry-node,
//     built static and reproducible), the variant's templates and defaults,
//     os-release and the /etc skeleton;
//  5. prunes documentation, locales, shells, package managers and perl, and
//     asserts that none remain;
//  6. makes the read-only root (erofs), its dm-verity hash tree, the BOOT
//     filesystem (kernel, initramfs with gantry-init, command line with the
//     root hash) and the disk image (GPT from disklayout, set A filled, set B
//     empty, PRIVATE and DATA formatted).
//
// Every output is a function of the inputs (variant folder, lock file,
// source tree, version, build ID and SOURCE_DATE_EPOCH): two builds from the
// same inputs are identical byte for byte. See docs/variants.md.
package imagebuild
