package host

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/peernet/peernet/discovery"
	"github.com/peernet/peernet/trust"
)

// How the node acts on address hints. Anyone on the link can forge an mDNS
// announcement, so a hint is a candidate address, never the peer's address:
// it becomes the address the node redials (Peers' Addr) only once a
// handshake there has proven the peer's key. Until then it costs the node
// at most these dials:
//
//   - an address is dialled at once the first time it is hinted, then at
//     most once per window: 10 s, then 30 s, 90 s, ... (×3) up to 10 min.
//     Hearing the address again does not shorten the window; only a
//     handshake proving the peer's key there resets it.
//   - an address that answers with another key is quarantined: not dialled
//     for hintQuarantine, whatever is announced.
//   - a goodbye from the source drops its hints for that peer at once.
//   - a connected peer's hints are kept but not dialled; they never replace
//     its address. They may fill an address the node does not know (the
//     peer dialled us) when the hint's IP is the one the connection comes
//     from, since the handshake has proven the peer there.
//   - per peer, at most hintAddrsPerPeer live candidates, and at most
//     hintBurst hint dials at once, then one per hintRefill (so a flood of
//     announcements from many addresses costs a few dials a minute).
//
// One forged announcement (a trusted PeerID at a wrong address) thus costs
// 3 dials in its first minute if nothing answers there, 1 if something
// answers with another key; docs/operating.md states this, and
// TestForgedAnnouncementDialBudget measures it.
const (
	hintRetryFirst     = 10 * time.Second
	hintRetryFactor    = 3
	hintRetryMax       = 10 * time.Minute
	hintQuarantine     = 10 * time.Minute
	hintAddrsPerPeer   = 4
	hintHistoryPerPeer = 16 // addresses per peer whose window is remembered
	hintBurst          = 4
	hintRefill         = 10 * time.Second
)

// hintOutcome is what a dial to a hinted address showed.
type hintOutcome int

const (
	hintFailed   hintOutcome = iota // no handshake: refused, timed out, garbled
	hintProven                      // the peer's key answered there
	hintWrongKey                    // another key answered there
)

// hintPolicy decides which hinted addresses to dial and when. It holds no
// clock and starts nothing: callers pass the time, which lets a test play
// minutes of announcements in a moment. Not safe for concurrent use.
type hintPolicy struct {
	peers map[trust.PeerID]*hintPeer
}

type hintPeer struct {
	cands    []hintCand // live candidates, oldest first
	addrs    map[netip.AddrPort]*hintAddr
	tokens   int
	refilled time.Time
}

type hintCand struct {
	addr    netip.AddrPort
	source  string
	expires time.Time // zero: never
}

// hintAddr is the dial history of one address of one peer.
type hintAddr struct {
	next        time.Time     // no dial before
	window      time.Duration // the gap after the next dial
	quarantined time.Time     // answered with another key; ignored until then
	inflight    bool
	used        time.Time // last offered or dialled, for eviction
}

// hintDial is a dial the policy asks for.
type hintDial struct {
	peer   trust.PeerID
	addr   netip.AddrPort
	source string
}

func newHintPolicy() *hintPolicy {
	return &hintPolicy{peers: map[trust.PeerID]*hintPeer{}}
}

// offer takes hint h, received at now. A hint whose Gone is set drops the
// peer's candidates from h.Source. It returns false if h was ignored.
func (p *hintPolicy) offer(h discovery.Hint, now time.Time) bool {
	hp := p.peers[h.Peer]
	if h.Gone {
		if hp != nil {
			kept := hp.cands[:0]
			for _, c := range hp.cands {
				if c.source != h.Source {
					kept = append(kept, c)
				}
			}
			hp.cands = kept
		}
		return true
	}
	if !usableHintAddr(h.Addr) {
		return false
	}
	if hp == nil {
		hp = &hintPeer{addrs: map[netip.AddrPort]*hintAddr{}, tokens: hintBurst, refilled: now}
		p.peers[h.Peer] = hp
	}
	if st := hp.addrs[h.Addr]; st != nil && now.Before(st.quarantined) {
		return false // answered with another key
	}
	for i, c := range hp.cands {
		if c.addr == h.Addr {
			hp.cands[i].source, hp.cands[i].expires = h.Source, h.Expires
			return true
		}
	}
	if len(hp.cands) >= hintAddrsPerPeer {
		hp.cands = hp.cands[1:]
	}
	hp.cands = append(hp.cands, hintCand{addr: h.Addr, source: h.Source, expires: h.Expires})
	return true
}

// usableHintAddr rejects addresses nobody can be dialled at.
func usableHintAddr(ap netip.AddrPort) bool {
	a := ap.Addr()
	return ap.IsValid() && ap.Port() != 0 && !a.IsUnspecified() && !a.IsMulticast() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// candidates returns the peer's live candidates at now.
func (p *hintPolicy) candidates(peer trust.PeerID, now time.Time) []hintCand {
	hp := p.peers[peer]
	if hp == nil {
		return nil
	}
	hp.expire(now)
	return hp.cands
}

// forget drops all the policy knows of peer (it is no longer trusted).
func (p *hintPolicy) forget(peer trust.PeerID) { delete(p.peers, peer) }

// due returns the dials to start at now, marking them in flight, and when
// to look again (zero if nothing waits). dialable says whether a peer may be
// dialled at all (trusted and not connected).
func (p *hintPolicy) due(now time.Time, dialable func(trust.PeerID) bool) (dials []hintDial, next time.Time) {
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for peer, hp := range p.peers {
		hp.expire(now)
		if len(hp.cands) == 0 || !dialable(peer) {
			continue
		}
		hp.refill(now)
		for _, c := range hp.cands {
			st := hp.addr(c.addr, now)
			switch {
			case st.inflight:
			case now.Before(st.next):
				later(st.next)
			case hp.tokens == 0:
				later(hp.refilled.Add(hintRefill))
			default:
				hp.tokens--
				st.inflight, st.used = true, now
				st.window = min(max(hintRetryFirst, hintRetryFactor*st.window), hintRetryMax)
				st.next = now.Add(st.window)
				dials = append(dials, hintDial{peer: peer, addr: c.addr, source: c.source})
			}
		}
	}
	return dials, next
}

// done records the outcome of a dial that due asked for.
func (p *hintPolicy) done(d hintDial, out hintOutcome, now time.Time) {
	hp := p.peers[d.peer]
	if hp == nil {
		return
	}
	st := hp.addr(d.addr, now)
	st.inflight = false
	switch out {
	case hintProven:
		st.next, st.window = now, 0
	case hintWrongKey:
		st.quarantined = now.Add(hintQuarantine)
		if st.next.Before(st.quarantined) {
			st.next = st.quarantined
		}
		kept := hp.cands[:0]
		for _, c := range hp.cands {
			if c.addr != d.addr {
				kept = append(kept, c)
			}
		}
		hp.cands = kept
	}
}

func (hp *hintPeer) expire(now time.Time) {
	kept := hp.cands[:0]
	for _, c := range hp.cands {
		if c.expires.IsZero() || now.Before(c.expires) {
			kept = append(kept, c)
		}
	}
	hp.cands = kept
}

func (hp *hintPeer) refill(now time.Time) {
	for hp.tokens < hintBurst && !now.Before(hp.refilled.Add(hintRefill)) {
		hp.tokens++
		hp.refilled = hp.refilled.Add(hintRefill)
	}
	if hp.tokens == hintBurst {
		hp.refilled = now
	}
}

// addr returns the history of ap, making room for it if it is new: the
// entry used longest ago goes, unless a dial to it is in flight.
func (hp *hintPeer) addr(ap netip.AddrPort, now time.Time) *hintAddr {
	if st := hp.addrs[ap]; st != nil {
		return st
	}
	if len(hp.addrs) >= hintHistoryPerPeer {
		var oldest netip.AddrPort
		var oldestUsed time.Time
		for a, st := range hp.addrs {
			if !st.inflight && (!oldest.IsValid() || st.used.Before(oldestUsed)) {
				oldest, oldestUsed = a, st.used
			}
		}
		delete(hp.addrs, oldest)
	}
	st := &hintAddr{next: now, used: now}
	hp.addrs[ap] = st
	return st
}

// hintDialer applies a hintPolicy to a node: it takes hints from the
// discovery sources and dials what the policy allows, from one loop that
// the node owns.
type hintDialer struct {
	n    *Node
	wake chan struct{} // buffered 1

	mu  sync.Mutex
	pol *hintPolicy
}

func newHintDialer(n *Node) *hintDialer {
	return &hintDialer{n: n, wake: make(chan struct{}, 1), pol: newHintPolicy()}
}

func (d *hintDialer) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// hint takes an address hint from a discovery source. Hints naming an
// untrusted peer or ourselves are ignored: an announcement can never make
// the node dial a key it does not trust.
func (d *hintDialer) hint(h discovery.Hint) {
	n := d.n
	if h.Peer == n.Identity() {
		return
	}
	if !n.trust.Contains(h.Peer) {
		n.log.Debug("ignoring announcement from untrusted peer", "peer", h.Peer.Short(), "addr", h.Addr)
		return
	}
	if !h.Gone {
		n.fillAddrFromHint(h)
	}
	d.mu.Lock()
	ok := d.pol.offer(h, time.Now())
	d.mu.Unlock()
	switch {
	case h.Gone:
		n.log.Debug("peer said goodbye; dropping its hints", "peer", h.Peer.Short(), "source", h.Source)
	case !ok:
		n.log.Debug("ignoring hint", "peer", h.Peer.Short(), "addr", h.Addr, "source", h.Source)
	default:
		n.resume(h.Peer) // a fresh hint ends a Disconnect
		d.poke()
	}
}

// fillAddrFromHint records h as where a connected peer listens if the node
// knows no address for it and h's IP is the one the connection comes from.
// The handshake has proven the peer at that IP; only the port is the
// hint's word.
func (n *Node) fillAddrFromHint(h discovery.Hint) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ps := n.peers[h.Peer]
	if ps == nil || ps.conn == nil || ps.addr != "" || n.closed {
		return
	}
	ra, ok := ps.conn.remoteAddr().(*net.TCPAddr)
	if !ok || ra.AddrPort().Addr().Unmap().WithZone("") != h.Addr.Addr().WithZone("") {
		return
	}
	ps.addr, ps.via = h.Addr.String(), h.Source
	n.log.Debug("peer address discovered", "peer", h.Peer.Short(), "addr", ps.addr, "source", h.Source)
}

// run dials hinted addresses as the policy allows until ctx is done, then
// waits for its dials.
func (d *hintDialer) run(ctx context.Context) {
	n := d.n
	// A peer going down may make its candidates worth a dial.
	unsubscribe := n.Subscribe(func(PeerEvent) { d.poke() })
	defer unsubscribe()
	var dials sync.WaitGroup
	defer dials.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		due, next := d.pol.due(time.Now(), d.dialable)
		d.mu.Unlock()
		for _, hd := range due {
			dials.Go(func() { d.dial(ctx, hd) })
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// dialable reports whether peer's hints may be dialled now. It forgets
// peers that are no longer trusted. d.mu held.
func (d *hintDialer) dialable(peer trust.PeerID) bool {
	if !d.n.trust.Contains(peer) {
		d.pol.forget(peer)
		return false
	}
	n := d.n
	n.mu.RLock()
	defer n.mu.RUnlock()
	ps := n.peers[peer]
	return ps == nil || ps.conn == nil && !ps.suspended
}

func (d *hintDialer) dial(ctx context.Context, hd hintDial) {
	n := d.n
	addr := hd.addr.String()
	n.log.Debug("dialling hinted address", "peer", hd.peer.Short(), "addr", addr, "source", hd.source)
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	ps := n.peerLocked(hd.peer)
	n.mu.Unlock()
	err := n.dial(ctx, hd.peer, addr, ps)
	out := hintFailed
	switch {
	case err == errSameAddr || errors.Is(err, ErrAlreadyConnected):
		// Connected while the dial waited its turn: nothing was dialled.
	case err == nil || errors.Is(err, ErrNotTrustedByPeer):
		out = hintProven
	case errors.Is(err, ErrWrongPeer):
		out = hintWrongKey
		n.log.Warn("hinted address answered with another key; ignoring it", "peer", hd.peer.Short(), "addr", addr,
			"source", hd.source, "quarantine", hintQuarantine)
	default:
		n.log.Debug("hinted address failed", "peer", hd.peer.Short(), "addr", addr, "error", err)
	}
	d.mu.Lock()
	d.pol.done(hd, out, time.Now())
	d.mu.Unlock()
	if out == hintProven {
		n.adoptAddr(hd.peer, addr, hd.source)
	}
	d.poke()
}

// adoptAddr makes addr, where a handshake has just proven peer, the address
// the node redials peer at.
func (n *Node) adoptAddr(peer trust.PeerID, addr, via string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || !n.trust.Contains(peer) {
		return
	}
	ps := n.peerLocked(peer)
	changed := ps.addr != addr
	ps.addr, ps.via = addr, via
	switch {
	case ps.redial != nil && changed:
		// Stop a dial to the old address; the loop ends if we are
		// connected, else it dials addr.
		ps.redial.retry(addr)
	case ps.conn == nil && ps.redial == nil:
		// The peer refused us: redial with backoff, as for any address.
		n.redialLocked(peer, ps, n.cfg.ReconnectMin)
	}
}

// startDiscovery runs the configured sources of address hints, each in a
// goroutine of the node's, and the loop that dials what they find, until
// the node closes.
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
	if len(sources) == 0 {
		return nil
	}
	d := newHintDialer(n)
	n.wg.Go(func() { d.run(n.ctx) })
	for _, src := range sources {
		n.wg.Go(func() {
			if err := src.Run(n.ctx, d.hint); err != nil && n.ctx.Err() == nil {
				n.log.Error("discovery stopped", "error", err)
			}
		})
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
