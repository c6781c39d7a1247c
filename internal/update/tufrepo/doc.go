// Package tufrepo owns the publisher's side of Gantry's update repository:
// its signing keys, creating a TUF repository, publishing releases into it
// (zstd-compressed images and migrations, manifest.json), refreshing its
// metadata before it expires, rotating its root keys, and validating it as
// a node would. It also provides the `gantry repo` command line.
//
// Repositories are written with go-tuf/v2's low-level metadata API and
// read back with its client (metadata/updater), which is what updog uses.
// Tests of other packages can build repositories in-process with
// GenerateKey, LoadKey, Create and (*Repo).AddRelease, and serve them with
// Handler.
//
// # On-disk layout
//
//	DIR/
//	  metadata/                 served as settings.updates.metadata-base-url
//	    1.root.json             root role, version 1 (the first trust anchor)
//	    2.root.json …           each later root, signed by the previous root's keys and its own
//	    root.json               a copy of the newest N.root.json: ship it in images
//	    N.targets.json          targets role, version N (older versions are kept)
//	    N.snapshot.json         snapshot role, version N (older versions are kept)
//	    timestamp.json          timestamp role: the only file replaced in place
//	  targets/                  served as settings.updates.targets-base-url
//	    <sha256>.manifest.json
//	    <sha256>.gantry-<variant>-<arch>-<version>-boot.img.zst
//	    <sha256>.gantry-<variant>-<arch>-<version>-root.img.zst
//	    <sha256>.gantry-<variant>-<arch>-<version>-hash.img.zst
//	    <sha256>.<migration>.zst
//	  .gantry-repo.lock         held while a publisher changes the repository
//
// Root has consistent_snapshot set, so a client fetches N.root.json,
// timestamp.json, then N.snapshot.json and N.targets.json by the versions
// the metadata names, and each target as <sha256-hex>.<name>, the sha256
// being that of the stored (compressed) bytes. Target names carry no
// directory, so the targets directory is flat and shared by every variant
// and architecture.
//
// Changes write targets first, then N.targets.json, N.snapshot.json and
// root files under new names, and timestamp.json last; each file goes
// through a synced temporary file renamed into place. A reader therefore
// never sees metadata that names a missing file. When uploading a
// repository to a server, keep that order: targets/, then metadata/ with
// timestamp.json last.
//
// Keys are ed25519 PEM files: the private key in PKCS #8 ("PRIVATE KEY",
// mode 0600) and the public key in PKIX ("PUBLIC KEY", NAME.pub).
package tufrepo
