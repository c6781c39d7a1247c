// Package localfs owns first-boot preparation of the node's writable
// partitions: PRIVATE (GANTRY-PRIVATE, mounted on /var/lib/gantry) and DATA
// (GANTRY-DATA, mounted on /local). The image builder leaves both zeroed;
// prepare-local-fs.service runs Main before the mount units, and Main makes an
// ext4 filesystem on each partition that does not hold a complete one yet.
// On a first boot it also grows DATA to the end of a disk larger than the
// image, when DATA is the disk's last partition. It links each prepared
// partition at /run/gantry/partitions/<GPT name> (the mount units' sources)
// and, with Options.Mount, makes the node's writable mounts (NodeMounts).
//
// Crash safety rests on the filesystem label. mkfs.ext4 writes the filesystem
// with the label GANTRY-PENDING; only after it has finished and the device is
// synced does Main write the final label (the partition's GPT name) into the
// primary superblock, then into the backup superblocks. A filesystem counts as
// complete only when its primary superblock has the ext4 magic, the final
// label and a valid checksum. Anything else (zeros, a half-written mkfs, the
// pending label, a label write torn between two sectors) is formatted again.
// A superblock that has the final label but fails its checksum for any other
// reason, or a missing primary superblock whose first backup has the final
// label, is refused with an error: that is the user's damaged data, for
// e2fsck, never for mkfs. See docs/partitions.md.
package localfs
