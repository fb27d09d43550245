package host

import "github.com/peernet/peernet/trust"

// ConnCount reports how many connections n has to peer, the one in use and
// any being retired after a tie-break.
func (n *Node) ConnCount(peer trust.PeerID) int { return n.connCount(peer) }

// Local exposes the node's handshake material to raw-wire tests.
func (n *Node) Local() any { return n.local }
