package host

import "github.com/peernet/peernet/trust"

// ConnCount reports how many connections n has to peer, the one in use and
// any being retired after a tie-break.
func (n *Node) ConnCount(peer trust.PeerID) int { return n.connCount(peer) }

// Local exposes the node's handshake material to raw-wire tests.
func (n *Node) Local() any { return n.local }

// PeerMemory reports the bytes charged to peer's memory budget: args of
// its requests running and replies queued for it.
func (n *Node) PeerMemory(peer trust.PeerID) int64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if ps := n.peers[peer]; ps != nil {
		return ps.budget.used.Load()
	}
	return 0
}

// ErrWriteStuck is the reason a peer that does not read is dropped.
var ErrWriteStuck = errWriteStuck
