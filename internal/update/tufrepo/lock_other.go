//go:build !unix

package tufrepo

// lockRepo is a no-op where flock(2) is missing: publish from one process
// at a time.
func lockRepo(string) (func(), error) { return func() {}, nil }
