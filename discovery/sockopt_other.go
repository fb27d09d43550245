//go:build !unix

package discovery

import "syscall"

// reuseAddrPort does nothing where SO_REUSEPORT does not exist; port 5353
// is then not shared with other responders.
func reuseAddrPort(_, _ string, _ syscall.RawConn) error { return nil }
