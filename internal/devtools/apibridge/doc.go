// Package apibridge carries the settings API's Unix socket across a
// boundary that only passes TCP: a QEMU guest with user-mode networking.
//
// Two halves use the same Forwarder:
//
//   - In the guest, the api-bridge command listens on TCP port 8081 and
//     forwards each connection to /run/api.sock. It does nothing to the
//     network: the node configures its own (netdog and systemd-networkd,
//     DHCP from QEMU's user network), as on any machine.
//   - On the host, package qemu listens on a Unix socket in the node's run
//     directory and forwards each connection to QEMU's hostfwd port on
//     127.0.0.1, so apiclient --socket-path works as on a node.
//
// The bridge has no authentication: whoever reaches the TCP port has the
// API, as root on the node. It is meant for development variants booted by
// `gantry run`, where the guest's user-mode network is reachable only
// through QEMU's hostfwd on the host's loopback. Its unit runs only when
// the kernel command line says gantry.api-bridge.
package apibridge
