package channel

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/peernet/peernet/trust"
)

// The bodies of the session's own calls are JSON (docs/plugin-protocol.md,
// §5 and §7), so that a plugin in any language reads them with its
// standard library.

// Description is the result of HandleDescribe.
type Description struct {
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Handles []string `json:"handles"`
	// Protocol is the plugin protocol version the plugin speaks.
	Protocol int `json:"protocol"`
}

// Configuration is the argument of HandleConfigure.
type Configuration struct {
	// MaxMessageSize bounds every call's arguments and every result.
	MaxMessageSize int `json:"max_message_size"`
	// Config is the plugin's own configuration (base64 in JSON).
	Config []byte `json:"config,omitempty"`
	// Callbacks says whether the node serves the plugin's callbacks.
	Callbacks bool `json:"callbacks"`
}

// Peer is one entry of HandlePeers's result.
type Peer struct {
	ID        trust.PeerID `json:"id"`
	Label     string       `json:"label"`
	Connected bool         `json:"connected"`
	Addr      string       `json:"addr,omitempty"`
	AddedAt   time.Time    `json:"added_at"`
	Source    string       `json:"source,omitempty"`
}

// Pair returns the two connected ends of a new call channel: a Unix stream
// socket pair, close-on-exec. The node keeps one and hands the other to
// the plugin as its descriptor 3 (see FD).
func Pair() (*os.File, *os.File, error) {
	// Under ForkLock, so that no process started meanwhile inherits them.
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, fmt.Errorf("creating the plugin channel: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "peernet-channel"), os.NewFile(uintptr(fds[1]), "peernet-channel"), nil
}

// FD is the descriptor a plugin finds its end of the channel on.
const FD = 3

// Conn turns f, one end of a channel, into a net.Conn; f is closed.
func Conn(f *os.File) (net.Conn, error) {
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("plugin channel descriptor %d: %w", f.Fd(), err)
	}
	return c, nil
}
