// Package testguest is what the guest of TestBridgeInGuest (a bare
// initramfs standing in for a node's userspace) uses to reach the network
// without systemd: loading kernel modules with their dependencies from a
// module tree, and giving the first Ethernet interface a static address and
// default route over rtnetlink. A real node's network is systemd-networkd's,
// driven by netdog (internal/network).
package testguest
