//go:build unix

package discovery

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// reuseAddrPort lets several mDNS responders on one host (other PeerNet
// nodes, avahi, ...) bind port 5353 together; each gets every multicast
// packet.
func reuseAddrPort(_, _ string, c syscall.RawConn) error {
	var opErr error
	err := c.Control(func(fd uintptr) {
		opErr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1),
		)
	})
	return errors.Join(err, opErr)
}
