package host

import (
	"net"
	"net/netip"

	"github.com/peernet/peernet/discovery"
)

// startDiscovery runs the configured sources of address hints, each in a
// goroutine of the node's, until the node closes.
func (n *Node) startDiscovery() error {
	sources := append([]discovery.Source(nil), n.cfg.Discovery...)
	if m := n.cfg.MDNS; m != nil {
		addrs := n.listenAddrs()
		if len(addrs) == 1 && addrs[0].IsLoopback() {
			n.log.Warn("listening on a loopback address: mDNS will not announce this node to other hosts", "addr", n.ln.Addr())
		}
		md, err := discovery.NewMDNS(discovery.MDNSConfig{
			Self:             n.Identity(),
			Port:             n.Port(),
			Interfaces:       m.Interfaces,
			Addrs:            addrs,
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

// listenAddrs returns the addresses to announce: the listener's own if it is
// bound to one, else nil for every address of the announcing links.
func (n *Node) listenAddrs() []netip.Addr {
	ip := n.ln.Addr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	if ip.IsUnspecified() {
		return nil
	}
	return []netip.Addr{ip}
}

// hint takes an address hint from discovery. Hints name only trusted peers;
// anything else is ignored, so an announcement can at worst make us dial an
// address where the handshake then fails. The address is recorded even
// while the peer is connected: a peer that dialled us is known only by its
// ephemeral port, and we need where it listens to redial it when the
// connection drops.
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
	addr := h.Addr.String()
	if ps.addr != addr {
		n.log.Debug("peer address discovered", "peer", h.Peer.Short(), "addr", addr, "source", h.Source)
	}
	n.setAddrLocked(h.Peer, ps, addr, h.Source)
}
