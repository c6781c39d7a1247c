// Package e2e holds end-to-end tests that drive Gantry's real binaries
// together, the way a node's boot and its users do.
package e2e
