package host

import (
	"github.com/peernet/peernet/discovery"
)

// startDiscovery runs the configured sources of address hints, each in a
// goroutine of the node's, until the node closes.
func (n *Node) startDiscovery() error {
	sources := append([]discovery.Source(nil), n.cfg.Discovery...)
	if m := n.cfg.MDNS; m != nil {
		md, err := discovery.NewMDNS(discovery.MDNSConfig{
			Self:             n.Identity(),
			Port:             n.Port(),
			Interfaces:       m.Interfaces,
			Filter:           n.trust.Contains,
			Logger:           n.log.Named("mdns"),
			AnnounceInterval: m.AnnounceInterval,
			QueryInterval:    m.QueryInterval,
		})
		if err != nil {
			return err
		}
		sources = append(sources, md)
	}
	for _, src := range sources {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := src.Run(n.ctx, n.hint); err != nil && n.ctx.Err() == nil {
				n.log.Error("discovery stopped", "error", err)
			}
		}()
	}
	return nil
}

// hint takes an address hint from discovery. Hints name only trusted peers
// we are not connected to; anything else is ignored, so an announcement can
// at worst make us dial an address where the handshake then fails.
func (n *Node) hint(h discovery.Hint) {
	if !n.trust.Contains(h.Peer) {
		n.log.Debug("ignoring announcement from untrusted peer", "peer", h.Peer.Short(), "addr", h.Addr)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	ps := n.peerLocked(h.Peer)
	if ps.conn != nil {
		return
	}
	addr := h.Addr.String()
	if ps.addr != addr {
		n.log.Debug("peer address discovered", "peer", h.Peer.Short(), "addr", addr, "source", h.Source)
	}
	ps.addr, ps.via = addr, h.Source
	n.redialLocked(h.Peer, ps, 0)
}
