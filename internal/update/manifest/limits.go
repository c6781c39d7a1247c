package manifest

// Size caps on what a node reads from an update repository, so that a
// repository cannot make it read endless data. updog applies them, and
// `gantry repo validate` checks a repository against the same numbers.
const (
	MaxRootBytes      = 1 << 20
	MaxTimestampBytes = 1 << 20
	MaxSnapshotBytes  = 10 << 20
	MaxTargetsBytes   = 10 << 20
	// MaxManifestBytes caps manifest.json itself.
	MaxManifestBytes = 10 << 20
)
