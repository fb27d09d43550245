package discovery

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// fuzzSeeds are real packets of each kind parsePacket meets.
func fuzzSeeds(tb testing.TB) [][]byte {
	a, b := testPeer(tb, 1), testPeer(tb, 2)
	resp := buildResponse(a, 7000, []netip.Addr{addr4, addr6, addrLL}, false)
	split := resp.Copy()
	split.Answer, split.Extra = resp.Answer[:1], resp.Answer[1:]
	two := resp.Copy()
	two.Answer = append(two.Answer, buildResponse(b, 7001, []netip.Addr{addr4}, false).Answer...)
	known := buildQuery(b)
	known.Answer = buildResponse(a, 7000, nil, false).Answer[:1]
	return [][]byte{
		pack(tb, resp),
		pack(tb, split),
		pack(tb, two),
		pack(tb, buildResponse(a, 7000, []netip.Addr{addr4}, true)),
		pack(tb, buildQuery(a)),
		pack(tb, buildProbe(ourRecords(a, 7000, []netip.Addr{addr4, addr6}))),
		pack(tb, known),
		[]byte("not a DNS message"),
	}
}

// FuzzParsePacket checks that no packet makes the parser panic, and that
// whatever it accepts is within bounds and survives re-encoding.
func FuzzParsePacket(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	self := testPeer(f, 9)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		anns, err := parsePacket(pkt)
		if err != nil {
			if anns != nil {
				t.Fatalf("announcements %v with error %v", anns, err)
			}
			return
		}
		if m, err := decodePacket(pkt); err == nil {
			rs := ourRecords(self, 7000, []netip.Addr{addr4, addr6})
			ans, extra := answer(m, rs)
			if len(ans) == 0 && len(extra) != 0 {
				t.Fatalf("additional records %v with no answer", extra)
			}
			if _, err := buildAnswer(m, ans, extra, true).Pack(); err != nil {
				t.Fatalf("packing our answer: %v", err)
			}
			conflicting(m, self, rs.unique())
			probeWins(m, rs)
		}
		tr := newTracker(self, nil, 4)
		for _, a := range anns {
			if a.Peer.IsZero() {
				t.Fatal("announcement of the zero PeerID")
			}
			tr.observe(a, time.Unix(1_700_000_000, 0))
			if a.TTL == 0 {
				continue
			}
			if a.Port == 0 || a.TTL > maxRecordTTL || len(a.Addrs) > maxPeerAddrs {
				t.Fatalf("out of bounds: %+v", a)
			}
			for _, ad := range a.Addrs {
				if !ad.IsValid() || ad.IsUnspecified() || ad.IsMulticast() || ad.Is4In6() {
					t.Fatalf("unusable address %v in %+v", ad, a)
				}
			}
			// Re-encoding an accepted announcement gives it back.
			out, err := buildResponse(a.Peer, a.Port, a.Addrs, false).Pack()
			if err != nil {
				t.Fatalf("packing %+v: %v", a, err)
			}
			again, err := parsePacket(out)
			if err != nil || len(again) != 1 || again[0].Peer != a.Peer || again[0].Port != a.Port ||
				again[0].TTL != ttlHost || !slices.Equal(again[0].Addrs, a.Addrs) {
				t.Fatalf("round trip of %+v gave %+v, %v", a, again, err)
			}
		}
	})
}
