package discovery

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/peernet/peernet/trust"
)

func ann(peer trust.PeerID, port uint16, addrs ...string) announcement {
	a := announcement{Peer: peer, Port: port, TTL: 120}
	for _, s := range addrs {
		a.Addrs = append(a.Addrs, netip.MustParseAddr(s))
	}
	return a
}

func TestTracker(t *testing.T) {
	self, friend, stranger := testPeer(t, 1), testPeer(t, 2), testPeer(t, 3)
	trusted := func(id trust.PeerID) bool { return id == friend }
	t0 := time.Unix(1_700_000_000, 0)

	type step struct {
		at        time.Duration // since t0
		a         announcement
		wantHints []string // "addr:port", or "gone"
		wantDrop  string
	}
	goodbye := announcement{Peer: friend}
	tests := []struct {
		name   string
		filter func(trust.PeerID) bool
		steps  []step
	}{
		{"first sighting is reported", trusted, []step{
			{0, ann(friend, 7000, "10.0.0.2", "fd77::2"), []string{"10.0.0.2:7000", "[fd77::2]:7000"}, ""},
		}},
		{"own announcement ignored", nil, []step{
			{0, ann(self, 7000, "10.0.0.1"), nil, dropSelf},
		}},
		{"untrusted peer dropped", trusted, []step{
			{0, ann(stranger, 7000, "10.0.0.3"), nil, dropFiltered},
		}},
		{"no filter accepts anyone", nil, []step{
			{0, ann(stranger, 7000, "10.0.0.3"), []string{"10.0.0.3:7000"}, ""},
		}},
		{"no address or port dropped", nil, []step{
			{0, ann(friend, 7000), nil, dropNoAddr},
			{0, ann(friend, 0, "10.0.0.2"), nil, dropNoPort},
		}},
		{"repeats within a second are quiet", trusted, []step{
			{0, ann(friend, 7000, "10.0.0.2"), []string{"10.0.0.2:7000"}, ""},
			{300 * time.Millisecond, ann(friend, 7000, "10.0.0.2"), nil, ""},
			{999 * time.Millisecond, ann(friend, 7000, "10.0.0.2"), nil, ""},
			{time.Second, ann(friend, 7000, "10.0.0.2"), []string{"10.0.0.2:7000"}, ""},
		}},
		{"new address reported at once", trusted, []step{
			{0, ann(friend, 7000, "10.0.0.2"), []string{"10.0.0.2:7000"}, ""},
			{100 * time.Millisecond, ann(friend, 7000, "10.0.0.2", "fd77::2"), []string{"[fd77::2]:7000"}, ""},
			{200 * time.Millisecond, ann(friend, 7001, "10.0.0.2"), []string{"10.0.0.2:7001"}, ""},
		}},
		{"conflicting addresses all reported", trusted, []step{
			{0, ann(friend, 7000, "10.0.0.2"), []string{"10.0.0.2:7000"}, ""},
			{10 * time.Millisecond, ann(friend, 7000, "10.0.0.66"), []string{"10.0.0.66:7000"}, ""},
			{20 * time.Millisecond, ann(friend, 7000, "10.0.0.2"), nil, ""},
			{30 * time.Millisecond, ann(friend, 7000, "10.0.0.66"), nil, ""},
		}},
		{"goodbye forgets the peer", trusted, []step{
			{0, ann(friend, 7000, "10.0.0.2"), []string{"10.0.0.2:7000"}, ""},
			{100 * time.Millisecond, goodbye, []string{"gone"}, dropGoodbye},
			{200 * time.Millisecond, ann(friend, 7000, "10.0.0.2"), []string{"10.0.0.2:7000"}, ""},
		}},
		{"expired address is news again", trusted, []step{
			{0, announcement{Peer: friend, Port: 7000, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}, TTL: 2}, []string{"10.0.0.2:7000"}, ""},
			{2 * time.Second, ann(friend, 7000, "10.0.0.3"), []string{"10.0.0.3:7000"}, ""},
			{2100 * time.Millisecond, ann(friend, 7000, "10.0.0.2"), []string{"10.0.0.2:7000"}, ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(self, tt.filter, 16)
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				hints, drop := tr.observe(s.a, now)
				var got []string
				for _, h := range hints {
					if h.Gone {
						got = append(got, "gone")
					} else {
						got = append(got, h.Addr.String())
						if want := now.Add(time.Duration(s.a.TTL) * time.Second); !h.Expires.Equal(want) {
							t.Errorf("step %d: hint expires %v, want %v", i, h.Expires, want)
						}
					}
					if h.Peer != s.a.Peer || h.Source != SourceMDNS || !h.Seen.Equal(now) {
						t.Errorf("step %d: hint %+v, want peer %s, source %q, seen %v", i, h, s.a.Peer.Short(), SourceMDNS, now)
					}
				}
				if !slices.Equal(got, s.wantHints) || drop != s.wantDrop {
					t.Errorf("step %d: hints %v, drop %q; want %v, %q", i, got, drop, s.wantHints, s.wantDrop)
				}
			}
		})
	}
}

// TestTrackerAddressesBounded checks that one peer announcing ever new
// addresses is remembered at no more than maxPeerAddrs of them, the newest.
func TestTrackerAddressesBounded(t *testing.T) {
	peer := testPeer(t, 2)
	tr := newTracker(testPeer(t, 1), nil, 16)
	now := time.Unix(1_700_000_000, 0)
	for i := range 10 {
		now = now.Add(10 * time.Millisecond)
		addr := fmt.Sprintf("10.0.0.%d", i+1)
		hints, _ := tr.observe(ann(peer, 7000, addr), now)
		if len(hints) != 1 || hints[0].Addr.Addr().String() != addr {
			t.Fatalf("announcement %d: hints %v, want one for %s", i, hints, addr)
		}
		if n := len(tr.peers[peer].addrs); n > maxPeerAddrs {
			t.Fatalf("announcement %d: %d addresses tracked, limit %d", i, n, maxPeerAddrs)
		}
	}
	var kept []string
	for _, a := range tr.peers[peer].addrs {
		kept = append(kept, a.ap.Addr().String())
	}
	if want := []string{"10.0.0.7", "10.0.0.8", "10.0.0.9", "10.0.0.10"}; !slices.Equal(kept, want) {
		t.Errorf("kept %v, want the newest %v", kept, want)
	}
	// One announcement listing more than the limit reports only the limit.
	hints, _ := tr.observe(ann(testPeer(t, 3), 7000, "10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5"), now)
	if len(hints) != maxPeerAddrs {
		t.Errorf("%d hints from one announcement, want %d", len(hints), maxPeerAddrs)
	}
}

// TestTrackerFloodBounded checks that a flood of announcing PeerIDs keeps at
// most max peers, evicting those heard from longest ago.
func TestTrackerFloodBounded(t *testing.T) {
	const maxPeers = 32
	tr := newTracker(testPeer(t, 1), nil, maxPeers)
	now := time.Unix(1_700_000_000, 0)
	var last trust.PeerID
	for i := range 5000 {
		sum := sha256.Sum256(fmt.Appendf(nil, "flood %d", i))
		id, err := trust.PeerIDFromBytes(sum[:])
		if err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Millisecond)
		if hints, _ := tr.observe(ann(id, 7000, "10.0.0.9"), now); len(hints) != 1 {
			t.Fatalf("peer %d: %d hints, want 1", i, len(hints))
		}
		if len(tr.peers) > maxPeers {
			t.Fatalf("after %d peers: %d tracked, limit %d", i+1, len(tr.peers), maxPeers)
		}
		last = id
	}
	if tr.peers[last] == nil {
		t.Error("the newest peer was evicted")
	}
	friend := testPeer(t, 2)
	tr.observe(ann(friend, 7000, "10.0.0.2"), now)
	if tr.peers[friend] == nil || len(tr.peers) != maxPeers {
		t.Errorf("after the flood: friend tracked %v, %d peers; want true, %d", tr.peers[friend] != nil, len(tr.peers), maxPeers)
	}
}
