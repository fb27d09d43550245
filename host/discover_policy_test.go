package host

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/peernet/peernet/discovery"
	"github.com/peernet/peernet/trust"
)

func policyPeer(t *testing.T) trust.PeerID {
	t.Helper()
	id, err := trust.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id.PeerID()
}

// policySim plays a hintPolicy on a simulated clock, the way hintDialer
// drives it: it asks the policy for due dials every tick and settles each
// dial at once with the outcome the address gives.
type policySim struct {
	pol       *hintPolicy
	now       time.Time
	connected map[trust.PeerID]bool
	outcome   func(netip.AddrPort) hintOutcome
	dials     map[netip.AddrPort][]time.Duration // dial times since start, per address
	start     time.Time
}

func newPolicySim(outcome func(netip.AddrPort) hintOutcome) *policySim {
	t0 := time.Unix(1_700_000_000, 0)
	return &policySim{pol: newHintPolicy(), now: t0, start: t0, connected: map[trust.PeerID]bool{},
		outcome: outcome, dials: map[netip.AddrPort][]time.Duration{}}
}

func (s *policySim) tick() {
	due, _ := s.pol.due(s.now, func(p trust.PeerID) bool { return !s.connected[p] })
	for _, d := range due {
		s.dials[d.addr] = append(s.dials[d.addr], s.now.Sub(s.start))
		s.pol.done(d, s.outcome(d.addr), s.now)
	}
}

func (s *policySim) total() int {
	n := 0
	for _, d := range s.dials {
		n += len(d)
	}
	return n
}

// run advances the clock to d after start in 100 ms ticks, calling every
// at each tick first.
func (s *policySim) run(d time.Duration, every func(since time.Duration)) {
	for ; s.now.Sub(s.start) <= d; s.now = s.now.Add(100 * time.Millisecond) {
		if every != nil {
			every(s.now.Sub(s.start))
		}
		s.tick()
	}
}

// TestForgedAnnouncementDialBudget measures the dials that one forged
// announcement (a trusted PeerID at a wrong address, re-announced every
// second as a responder does) costs over 60 s, on the policy's own clock,
// so the test proves the bound for the full minute in no time. The figures
// are in docs/benchmarks.md; the target is at most 3.
func TestForgedAnnouncementDialBudget(t *testing.T) {
	const budget = 3
	forged := netip.MustParseAddrPort("192.0.2.66:4242")
	tests := []struct {
		name     string
		outcome  hintOutcome
		goodbyes bool // the forger says goodbye and announces again every 5 s
		want     int
	}{
		{"nothing listens", hintFailed, false, 3},
		{"nothing listens, goodbye and re-announce", hintFailed, true, 3},
		{"another key answers", hintWrongKey, false, 1},
		{"another key answers, goodbye and re-announce", hintWrongKey, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := policyPeer(t)
			s := newPolicySim(func(netip.AddrPort) hintOutcome { return tt.outcome })
			s.run(60*time.Second, func(since time.Duration) {
				if since%time.Second != 0 {
					return
				}
				if tt.goodbyes && since%(5*time.Second) == 0 && since > 0 {
					s.pol.offer(discovery.Hint{Peer: peer, Source: discovery.SourceMDNS, Gone: true}, s.now)
				}
				s.pol.offer(discovery.Hint{Peer: peer, Addr: forged, Source: discovery.SourceMDNS, Expires: s.now.Add(120 * time.Second)}, s.now)
			})
			t.Logf("dials in 60 s: %d at %v", s.total(), s.dials[forged])
			if got := s.total(); got != tt.want || got > budget {
				t.Errorf("%d dials in 60 s, want %d (budget %d)", got, tt.want, budget)
			}
		})
	}
}

// The policy's other promises, on its own clock.
func TestHintPolicy(t *testing.T) {
	a := netip.MustParseAddrPort("192.0.2.1:4242")
	b := netip.MustParseAddrPort("192.0.2.2:4242")
	fail := func(netip.AddrPort) hintOutcome { return hintFailed }
	hint := func(peer trust.PeerID, ap netip.AddrPort, now time.Time) discovery.Hint {
		return discovery.Hint{Peer: peer, Addr: ap, Source: discovery.SourceMDNS, Expires: now.Add(2 * time.Minute)}
	}

	t.Run("retry windows grow", func(t *testing.T) {
		peer := policyPeer(t)
		s := newPolicySim(fail)
		s.pol.offer(hint(peer, a, s.now), s.now)
		s.run(10*time.Minute, func(since time.Duration) {
			if since%time.Minute == 0 { // keep the hint alive
				s.pol.offer(hint(peer, a, s.now), s.now)
			}
		})
		want := []time.Duration{0, 10 * time.Second, 40 * time.Second, 130 * time.Second, 400 * time.Second}
		if fmt.Sprint(s.dials[a]) != fmt.Sprint(want) {
			t.Errorf("dials at %v, want %v", s.dials[a], want)
		}
	})

	t.Run("a new address is dialled at once", func(t *testing.T) {
		peer := policyPeer(t)
		s := newPolicySim(fail)
		s.pol.offer(hint(peer, a, s.now), s.now)
		s.tick()
		s.now = s.now.Add(time.Second)
		s.pol.offer(hint(peer, b, s.now), s.now)
		s.tick()
		if len(s.dials[a]) != 1 || len(s.dials[b]) != 1 {
			t.Errorf("dials %v, want one to each address", s.dials)
		}
	})

	t.Run("connected peer is not dialled", func(t *testing.T) {
		peer := policyPeer(t)
		s := newPolicySim(fail)
		s.connected[peer] = true
		s.run(time.Minute, func(since time.Duration) {
			if since%time.Second == 0 {
				s.pol.offer(hint(peer, a, s.now), s.now)
			}
		})
		if s.total() != 0 {
			t.Fatalf("dials %v to a connected peer", s.dials)
		}
		// Once it drops, the hint it kept is tried at once.
		s.connected[peer] = false
		s.tick()
		if len(s.dials[a]) != 1 {
			t.Errorf("dials %v after the peer dropped, want one to %v", s.dials, a)
		}
	})

	t.Run("goodbye drops the hint", func(t *testing.T) {
		peer := policyPeer(t)
		s := newPolicySim(fail)
		s.pol.offer(hint(peer, a, s.now), s.now)
		s.tick()
		s.pol.offer(discovery.Hint{Peer: peer, Source: discovery.SourceMDNS, Gone: true}, s.now)
		s.run(5*time.Minute, nil)
		if len(s.dials[a]) != 1 {
			t.Errorf("dials %v, want only the one before the goodbye", s.dials)
		}
		if c := s.pol.candidates(peer, s.now); len(c) != 0 {
			t.Errorf("candidates after goodbye: %v", c)
		}
	})

	t.Run("hint expires", func(t *testing.T) {
		peer := policyPeer(t)
		s := newPolicySim(fail)
		s.pol.offer(discovery.Hint{Peer: peer, Addr: a, Source: discovery.SourceMDNS, Expires: s.now.Add(5 * time.Second)}, s.now)
		s.run(5*time.Minute, nil)
		if len(s.dials[a]) != 1 {
			t.Errorf("dials %v, want one before the hint lapsed", s.dials)
		}
	})

	t.Run("proof resets the window", func(t *testing.T) {
		peer := policyPeer(t)
		proven := false
		s := newPolicySim(func(netip.AddrPort) hintOutcome {
			if proven {
				return hintProven
			}
			return hintFailed
		})
		s.pol.offer(hint(peer, a, s.now), s.now)
		s.tick() // fails: next try in 10 s
		s.now = s.now.Add(10 * time.Second)
		proven = true
		s.tick() // proven
		proven = false
		s.now = s.now.Add(time.Second)
		s.tick() // at once again
		if len(s.dials[a]) != 3 {
			t.Errorf("dials %v, want three", s.dials[a])
		}
	})

	t.Run("wrong key quarantines", func(t *testing.T) {
		peer := policyPeer(t)
		s := newPolicySim(func(netip.AddrPort) hintOutcome { return hintWrongKey })
		s.run(hintQuarantine-time.Second, func(since time.Duration) {
			if since%time.Second == 0 {
				s.pol.offer(hint(peer, a, s.now), s.now)
			}
		})
		if len(s.dials[a]) != 1 {
			t.Fatalf("dials %v within the quarantine, want one", s.dials[a])
		}
		s.run(hintQuarantine+time.Second, func(since time.Duration) {
			if since%time.Second == 0 {
				s.pol.offer(hint(peer, a, s.now), s.now)
			}
		})
		if len(s.dials[a]) != 2 {
			t.Errorf("dials %v, want a second one after the quarantine", s.dials[a])
		}
	})

	t.Run("flood of addresses is rate limited", func(t *testing.T) {
		peer := policyPeer(t)
		s := newPolicySim(fail)
		i := 0
		s.run(time.Minute, func(time.Duration) {
			i++
			ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 4242)
			s.pol.offer(hint(peer, ap, s.now), s.now)
		})
		limit := hintBurst + int(time.Minute/hintRefill)
		if s.total() > limit || s.total() == 0 {
			t.Errorf("%d dials in a minute of new addresses, want 1 to %d", s.total(), limit)
		}
		hp := s.pol.peers[peer]
		if len(hp.cands) > hintAddrsPerPeer || len(hp.addrs) > hintHistoryPerPeer {
			t.Errorf("%d candidates, %d addresses remembered; limits %d, %d", len(hp.cands), len(hp.addrs), hintAddrsPerPeer, hintHistoryPerPeer)
		}
		t.Logf("%d dials in a minute of a new address every 100 ms", s.total())
	})

	t.Run("unusable addresses ignored", func(t *testing.T) {
		peer := policyPeer(t)
		s := newPolicySim(fail)
		for _, ap := range []string{"224.0.0.251:4242", "[ff02::fb]:4242", "0.0.0.0:4242", "255.255.255.255:4242", "192.0.2.1:0"} {
			if s.pol.offer(hint(peer, netip.MustParseAddrPort(ap), s.now), s.now) {
				t.Errorf("hint at %s accepted", ap)
			}
		}
		s.tick()
		if s.total() != 0 {
			t.Errorf("dials %v", s.dials)
		}
	})
}
