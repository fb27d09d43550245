package host

import "github.com/peernet/peernet/trust"

// ConnCount reports how many connections n has to peer, the one in use and
// any being retired after a tie-break.
func (n *Node) ConnCount(peer trust.PeerID) int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	ps := n.peers[peer]
	if ps == nil {
		return 0
	}
	count := len(ps.others)
	if ps.conn != nil {
		count++
	}
	return count
}

// Local exposes the node's handshake material to raw-wire tests.
func (n *Node) Local() any { return n.local }
