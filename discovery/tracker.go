package discovery

import (
	"net/netip"
	"time"

	"github.com/peernet/peernet/trust"
)

// minHintInterval is how often a peer may be reported again at an address
// already reported; a new address is reported at once.
const minHintInterval = time.Second

// Reasons observe drops an announcement.
const (
	dropSelf     = "own announcement"
	dropFiltered = "peer not accepted by filter"
	dropGoodbye  = "goodbye"
	dropNoPort   = "no port"
	dropNoAddr   = "no address"
)

// tracker turns announcements into hints. It remembers, for at most max
// peers, the last maxPeerAddrs addresses each was seen at, so that repeated
// announcements do not flood the consumer and a flood of PeerIDs does not
// grow memory. It is not safe for concurrent use.
type tracker struct {
	self   trust.PeerID
	filter func(trust.PeerID) bool // nil accepts every peer
	max    int
	peers  map[trust.PeerID]*peerState
}

type peerState struct {
	addrs    []trackedAddr // oldest first
	lastSeen time.Time
	lastEmit time.Time
}

type trackedAddr struct {
	ap      netip.AddrPort
	seen    time.Time
	expires time.Time
}

func newTracker(self trust.PeerID, filter func(trust.PeerID) bool, maxPeers int) *tracker {
	return &tracker{self: self, filter: filter, max: maxPeers, peers: make(map[trust.PeerID]*peerState)}
}

// observe records announcement a, received at now, and returns the hints to
// report: a goodbye yields one Gone hint. Unless it reports new addresses
// it says why in drop (for a debug log); drop is empty when a was recorded
// but is not yet worth reporting again.
func (t *tracker) observe(a announcement, now time.Time) (hints []Hint, drop string) {
	switch {
	case a.Peer == t.self:
		return nil, dropSelf
	case t.filter != nil && !t.filter(a.Peer):
		return nil, dropFiltered
	case a.TTL == 0:
		delete(t.peers, a.Peer)
		return []Hint{{Peer: a.Peer, Source: SourceMDNS, Seen: now, Gone: true}}, dropGoodbye
	case a.Port == 0:
		return nil, dropNoPort
	case len(a.Addrs) == 0:
		return nil, dropNoAddr
	}

	p := t.peers[a.Peer]
	if p == nil {
		t.makeRoom()
		p = &peerState{}
		t.peers[a.Peer] = p
	}
	p.expire(now)
	p.lastSeen = now

	expires := now.Add(time.Duration(a.TTL) * time.Second)
	var fresh []netip.AddrPort
	for _, addr := range a.Addrs[:min(len(a.Addrs), maxPeerAddrs)] {
		ap := netip.AddrPortFrom(addr, a.Port)
		if i := p.find(ap); i >= 0 {
			p.addrs[i].seen, p.addrs[i].expires = now, expires
			continue
		}
		if len(p.addrs) >= maxPeerAddrs {
			p.dropOldest()
		}
		p.addrs = append(p.addrs, trackedAddr{ap: ap, seen: now, expires: expires})
		fresh = append(fresh, ap)
	}

	report := fresh
	if now.Sub(p.lastEmit) >= minHintInterval {
		report = nil
		for _, addr := range a.Addrs[:min(len(a.Addrs), maxPeerAddrs)] {
			report = append(report, netip.AddrPortFrom(addr, a.Port))
		}
	}
	if len(report) == 0 {
		return nil, ""
	}
	p.lastEmit = now
	for _, ap := range report {
		hints = append(hints, Hint{Peer: a.Peer, Addr: ap, Source: SourceMDNS, Seen: now, Expires: expires})
	}
	return hints, ""
}

// makeRoom evicts the peer seen longest ago if the tracker is full.
func (t *tracker) makeRoom() {
	if len(t.peers) < t.max {
		return
	}
	var oldest trust.PeerID
	var oldestSeen time.Time
	for id, p := range t.peers {
		if oldest.IsZero() || p.lastSeen.Before(oldestSeen) {
			oldest, oldestSeen = id, p.lastSeen
		}
	}
	delete(t.peers, oldest)
}

func (p *peerState) find(ap netip.AddrPort) int {
	for i, a := range p.addrs {
		if a.ap == ap {
			return i
		}
	}
	return -1
}

func (p *peerState) dropOldest() {
	oldest := 0
	for i, a := range p.addrs {
		if a.seen.Before(p.addrs[oldest].seen) {
			oldest = i
		}
	}
	p.addrs = append(p.addrs[:oldest], p.addrs[oldest+1:]...)
}

// expire forgets addresses whose records have expired, so that seeing one
// again is news.
func (p *peerState) expire(now time.Time) {
	kept := p.addrs[:0]
	for _, a := range p.addrs {
		if now.Before(a.expires) {
			kept = append(kept, a)
		}
	}
	p.addrs = kept
}
