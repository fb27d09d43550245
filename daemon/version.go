package daemon

import "runtime/debug"

// Version is the module version of the running program as the go command
// stamped it: a release tag such as "v1.2.0", or for a build from a clone
// a pseudo-version naming the commit ("v0.0.0-20261202161525-a39d0a1c5e2f",
// with "+dirty" when the work tree had changes). It is "(devel)" when the
// program carries no version, as test binaries and builds with
// -buildvcs=false do.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" {
		return "(devel)"
	}
	return bi.Main.Version
}
