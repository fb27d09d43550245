//go:build !linux

package pluginclient

// readSealed is only implemented on Linux (a sealed memfd); elsewhere Pin,
// and so Launch, fail.
func readSealed(string) (*sealedCopy, error) { return nil, errUnsupported }
