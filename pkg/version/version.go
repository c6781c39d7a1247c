// Package version holds the version of this Gantry source tree, used where
// no release file names one (development runs outside an image), and the
// version type every part of Gantry orders releases by (Semver).
package version

// Version is the version of this Gantry build. The image builder stamps the
// same value into the release file's VERSION_ID.
const Version = "0.1.0"
