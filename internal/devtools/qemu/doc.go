// Package qemu boots a Gantry image under qemu-system-x86_64 and gives the
// host its settings API: `gantry run`, and Start for tests.
//
// The package is the node's boot loader, as GRUB is on a Bottlerocket
// node: before each start of QEMU it picks partition set A or B from the
// disk's GPT flags as gptprio.next does (taking a try), copies vmlinuz,
// initrd.img and cmdline out of that set's BOOT partition, and boots them
// by direct kernel boot with gantry.bootuuid= added. QEMU runs with
// -no-reboot; when its SHUTDOWN event says the guest reset, the node goes
// through the boot loader again and QEMU starts anew on the same disk,
// socket and port, so updates and their rollback work. Boot files
// (Options.Boot) boots given files instead.
//
// The image is never written: the node runs on a sparse copy in its run
// directory (or, booting files, a qcow2 overlay), so the build output stays
// pristine and a second run of the same image boots the same disk again,
// datastore included. User data goes in through QEMU's fw_cfg
// (opt/gantry/user-data), where early-boot-config reads it.
//
// The guest has QEMU user-mode networking (eth0, which the node
// configures itself by DHCP: 10.0.2.15) with a hostfwd from a free port on
// the host's 127.0.0.1 to the guest's api-bridge (TCP 8081), which
// forwards to /run/api.sock. Options.NICs adds interfaces on networks of
// their own, and Options.NetTOML passes a net.toml (fw_cfg
// opt/gantry/net.toml). On the host a Unix socket in the run
// directory forwards to that port, so `apiclient --socket-path
// <run dir>/api.sock` works as it does on a node. The serial console goes
// to <run dir>/console.log.
//
// With Options.UpdateRepo, the node gets a local TUF update repository
// (tufrepo's development repository, one key made once): Start publishes
// the build's release into it when it is not there yet, serves it on the
// host's 127.0.0.1 (the guest's 10.0.2.2) until the node ends, and adds its
// URLs to the user data unless the user data names a repository. An image
// built with that repository's root.json then updates from it.
//
// The VM runs on one vCPU, with KVM when /dev/kvm can be opened read-write
// and with TCG otherwise. Stop asks the guest to power off over QMP
// (system_powerdown), and quits QEMU when the guest does not go in time.
package qemu
