package discovery

import (
	"crypto/ed25519"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/peernet/peernet/trust"
)

// testPeer returns a deterministic PeerID for seed.
func testPeer(tb testing.TB, seed byte) trust.PeerID {
	tb.Helper()
	priv := ed25519.NewKeyFromSeed(slices.Repeat([]byte{seed}, ed25519.SeedSize))
	id, err := trust.PeerIDFromPublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func pack(tb testing.TB, m *dns.Msg) []byte {
	tb.Helper()
	b, err := m.Pack()
	if err != nil {
		tb.Fatalf("packing: %v", err)
	}
	return b
}

var (
	addr4  = netip.MustParseAddr("10.77.0.2")
	addr6  = netip.MustParseAddr("fd77::2")
	addrLL = netip.MustParseAddr("fe80::1")
)

func TestBuildResponse(t *testing.T) {
	self := testPeer(t, 1)
	many := []netip.Addr{addr4, netip.MustParseAddr("10.0.0.3"), addr6, netip.MustParseAddr("fd77::3"), addrLL}
	tests := []struct {
		name      string
		addrs     []netip.Addr
		goodbye   bool
		wantAddrs []netip.Addr
	}{
		{"ipv4 only", []netip.Addr{addr4}, false, []netip.Addr{addr4}},
		{"ipv4 and ipv6", []netip.Addr{addr4, addr6, addrLL}, false, []netip.Addr{addr4, addr6, addrLL}},
		{"no address", nil, false, nil},
		{"capped", many, false, many[:maxPeerAddrs]},
		{"goodbye", []netip.Addr{addr4}, true, []netip.Addr{addr4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m dns.Msg
			if err := m.Unpack(pack(t, buildResponse(self, 7000, tt.addrs, tt.goodbye))); err != nil {
				t.Fatalf("unpacking our own response: %v", err)
			}
			if !m.Response || !m.Authoritative || m.Id != 0 || len(m.Question) != 0 {
				t.Errorf("header = %+v, want an authoritative response with id 0 and no question", m.MsgHdr)
			}
			inst, host := instanceName(self), hostName(self)
			var gotAddrs []netip.Addr
			var types []uint16
			for _, rr := range m.Answer {
				h := rr.Header()
				types = append(types, h.Rrtype)
				// RFC 6762 §10: 120 s for records naming a host, 75 min
				// for the others; 0 in a goodbye.
				wantTTL := uint32(120)
				if h.Rrtype == dns.TypePTR || h.Rrtype == dns.TypeTXT {
					wantTTL = 75 * 60
				}
				if tt.goodbye {
					wantTTL = 0
				}
				if h.Ttl != wantTTL {
					t.Errorf("%s TTL = %d, want %d", dns.TypeToString[h.Rrtype], h.Ttl, wantTTL)
				}
				wantClass := uint16(dns.ClassINET | cacheFlush)
				switch r := rr.(type) {
				case *dns.PTR:
					wantClass = dns.ClassINET // shared record: no cache flush
					if r.Hdr.Name != ServiceName || r.Ptr != inst {
						t.Errorf("PTR = %s, want %s -> %s", r, ServiceName, inst)
					}
				case *dns.SRV:
					if r.Hdr.Name != inst || r.Port != 7000 || r.Target != host {
						t.Errorf("SRV = %s, want %s port 7000 target %s", r, inst, host)
					}
				case *dns.TXT:
					want := []string{"v=1", "id=" + self.String()}
					if r.Hdr.Name != inst || !slices.Equal(r.Txt, want) {
						t.Errorf("TXT = %s, want %s %q", r, inst, want)
					}
				case *dns.A:
					if r.Hdr.Name != host {
						t.Errorf("A name = %s, want %s", r.Hdr.Name, host)
					}
					a, _ := netip.AddrFromSlice(r.A)
					gotAddrs = append(gotAddrs, a.Unmap())
				case *dns.AAAA:
					if r.Hdr.Name != host {
						t.Errorf("AAAA name = %s, want %s", r.Hdr.Name, host)
					}
					a, _ := netip.AddrFromSlice(r.AAAA)
					gotAddrs = append(gotAddrs, a)
				default:
					t.Errorf("unexpected record %s", rr)
				}
				if h.Class != wantClass {
					t.Errorf("%s class = %#x, want %#x", dns.TypeToString[h.Rrtype], h.Class, wantClass)
				}
			}
			if !slices.Equal(types[:3], []uint16{dns.TypePTR, dns.TypeSRV, dns.TypeTXT}) {
				t.Errorf("record types = %v, want PTR, SRV, TXT first", types)
			}
			if !slices.Equal(gotAddrs, tt.wantAddrs) {
				t.Errorf("addresses = %v, want %v", gotAddrs, tt.wantAddrs)
			}
		})
	}
}

func TestBuildQuery(t *testing.T) {
	self := testPeer(t, 1)
	var m dns.Msg
	if err := m.Unpack(pack(t, buildQuery(self))); err != nil {
		t.Fatal(err)
	}
	want := dns.Question{Name: ServiceName, Qtype: dns.TypePTR, Qclass: dns.ClassINET}
	if m.Response || m.Id != 0 || len(m.Question) != 1 || m.Question[0] != want {
		t.Errorf("query = %v, want one QM question %v", &m, want)
	}
	// Our own PTR is a known answer, so we never answer our own query.
	if len(m.Answer) != 1 || !sameRecord(m.Answer[0], ourRecords(self, 1, nil).ptr) || m.Answer[0].Header().Ttl != ttlOther {
		t.Errorf("known answers = %v, want our own PTR with full TTL", m.Answer)
	}
	if ans, _ := answer(&m, ourRecords(self, 7000, []netip.Addr{addr4})); len(ans) != 0 {
		t.Errorf("we answer our own query with %v", ans)
	}
	if ans, _ := answer(&m, ourRecords(testPeer(t, 2), 7000, []netip.Addr{addr4})); len(ans) != 1 {
		t.Errorf("another node answers our query with %v, want its PTR", ans)
	}
}

func TestBuildProbe(t *testing.T) {
	self := testPeer(t, 1)
	rs := ourRecords(self, 7000, []netip.Addr{addr4, addr6})
	var m dns.Msg
	if err := m.Unpack(pack(t, buildProbe(rs))); err != nil {
		t.Fatal(err)
	}
	wantQ := []dns.Question{
		{Name: instanceName(self), Qtype: dns.TypeANY, Qclass: dns.ClassINET | unicastResp},
		{Name: hostName(self), Qtype: dns.TypeANY, Qclass: dns.ClassINET | unicastResp},
	}
	if m.Response || !slices.Equal(m.Question, wantQ) {
		t.Errorf("probe questions = %v, want %v", m.Question, wantQ)
	}
	if len(m.Ns) != 4 || !slices.EqualFunc(m.Ns, rs.unique(), sameRecord) {
		t.Errorf("probe authority = %v, want %v", m.Ns, rs.unique())
	}
	if probeWins(&m, rs) {
		t.Error("our own probe, looped back, wins over us")
	}
}

// rewrite returns a copy of m with f applied to every record.
func rewrite(m *dns.Msg, f func(dns.RR) dns.RR) *dns.Msg {
	out := m.Copy()
	out.Answer = nil
	for _, rr := range m.Answer {
		if rr = f(dns.Copy(rr)); rr != nil {
			out.Answer = append(out.Answer, rr)
		}
	}
	return out
}

func dropType(typ uint16) func(dns.RR) dns.RR {
	return func(rr dns.RR) dns.RR {
		if rr.Header().Rrtype == typ {
			return nil
		}
		return rr
	}
}

func setTXT(txt ...string) func(dns.RR) dns.RR {
	return func(rr dns.RR) dns.RR {
		if r, ok := rr.(*dns.TXT); ok {
			r.Txt = txt
		}
		return rr
	}
}

func TestParsePacket(t *testing.T) {
	a, b := testPeer(t, 1), testPeer(t, 2)
	resp := buildResponse(a, 7000, []netip.Addr{addr4, addr6}, false)
	good := announcement{Peer: a, Port: 7000, Addrs: []netip.Addr{addr4, addr6}, TTL: 120}

	// PTR in the answer, the rest in the additional section, as in an
	// answer to a PTR query.
	split := resp.Copy()
	split.Answer, split.Extra = resp.Answer[:1], resp.Answer[1:]

	two := resp.Copy()
	two.Answer = append(two.Answer, buildResponse(b, 7001, []netip.Addr{netip.MustParseAddr("10.77.0.3")}, false).Answer...)

	upper := rewrite(resp, func(rr dns.RR) dns.RR {
		rr.Header().Name = strings.ToUpper(rr.Header().Name)
		if r, ok := rr.(*dns.PTR); ok {
			r.Ptr = strings.ToUpper(r.Ptr)
		}
		if r, ok := rr.(*dns.SRV); ok {
			r.Target = strings.ToUpper(r.Target)
		}
		return rr
	})

	ptrOnlyGoodbye := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true}}
	ptrOnlyGoodbye.Answer = []dns.RR{&dns.PTR{
		Hdr: dns.RR_Header{Name: ServiceName, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 0},
		Ptr: instanceName(a),
	}}

	badAddrs := resp.Copy()
	badAddrs.Answer = append(badAddrs.Answer[:3:3],
		&dns.A{Hdr: dns.RR_Header{Name: hostName(a), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 120}, A: net.IPv4zero},
		&dns.A{Hdr: dns.RR_Header{Name: hostName(a), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 120}, A: net.ParseIP("224.0.0.251")},
		&dns.A{Hdr: dns.RR_Header{Name: hostName(a), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 120}, A: net.IPv4bcast},
		&dns.A{Hdr: dns.RR_Header{Name: "someone-else.local.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 120}, A: net.ParseIP("10.9.9.9")},
		&dns.A{Hdr: dns.RR_Header{Name: hostName(a), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 120}, A: addr4.AsSlice()},
	)

	notPeerID := rewrite(resp, func(rr dns.RR) dns.RR {
		if r, ok := rr.(*dns.PTR); ok {
			r.Ptr = "printer." + ServiceName
		}
		if rr.Header().Name == instanceName(a) {
			rr.Header().Name = "printer." + ServiceName
		}
		return rr
	})

	otherClass := rewrite(resp, func(rr dns.RR) dns.RR {
		rr.Header().Class = dns.ClassCHAOS
		return rr
	})

	hugeTTL := rewrite(resp, func(rr dns.RR) dns.RR {
		rr.Header().Ttl = 1 << 31
		return rr
	})

	valid := pack(t, resp)
	notify := resp.Copy()
	notify.Opcode = dns.OpcodeNotify

	tests := []struct {
		name    string
		pkt     []byte
		want    []announcement
		wantErr error
	}{
		{"announcement", valid, []announcement{good}, nil},
		{"records split over answer and additional", pack(t, split), []announcement{good}, nil},
		{"two instances", pack(t, two), []announcement{good, {Peer: b, Port: 7001, Addrs: []netip.Addr{netip.MustParseAddr("10.77.0.3")}, TTL: ttlHost}}, nil},
		{"names in upper case", pack(t, upper), []announcement{good}, nil},
		{"no address records", pack(t, rewrite(resp, func(rr dns.RR) dns.RR {
			if rr.Header().Rrtype == dns.TypeA || rr.Header().Rrtype == dns.TypeAAAA {
				return nil
			}
			return rr
		})), []announcement{{Peer: a, Port: 7000, TTL: 120}}, nil},
		{"unusable addresses dropped", pack(t, badAddrs), []announcement{{Peer: a, Port: 7000, Addrs: []netip.Addr{addr4}, TTL: 120}}, nil},
		{"ttl capped", pack(t, hugeTTL), []announcement{{Peer: a, Port: 7000, Addrs: []netip.Addr{addr4, addr6}, TTL: maxRecordTTL}}, nil},
		{"goodbye", pack(t, buildResponse(a, 7000, []netip.Addr{addr4}, true)), []announcement{{Peer: a}}, nil},
		{"goodbye with PTR only", pack(t, ptrOnlyGoodbye), []announcement{{Peer: a}}, nil},
		{"no TXT", pack(t, rewrite(resp, dropType(dns.TypeTXT))), nil, nil},
		{"no SRV", pack(t, rewrite(resp, dropType(dns.TypeSRV))), nil, nil},
		{"other version", pack(t, rewrite(resp, setTXT("v=2", "id="+a.String()))), nil, nil},
		{"no version", pack(t, rewrite(resp, setTXT("id="+a.String()))), nil, nil},
		{"TXT names another peer", pack(t, rewrite(resp, setTXT("v=1", "id="+b.String()))), nil, nil},
		{"TXT with oversized and duplicate keys", pack(t, rewrite(resp, setTXT(append([]string{"v=1", "id=" + a.String(), "v=2", "id=" + b.String()},
			slices.Repeat([]string{strings.Repeat("k", 254) + "="}, 30)...)...))), []announcement{good}, nil},
		{"TXT keys any case, first wins", pack(t, rewrite(resp, setTXT("V=1", "ID="+a.String(), "id="+b.String()))), []announcement{good}, nil},
		{"instance is not a PeerID", pack(t, notPeerID), nil, nil},
		{"class not IN", pack(t, otherClass), nil, nil},
		{"query", pack(t, buildQuery(a)), nil, nil},
		{"probe", pack(t, buildProbe(ourRecords(a, 7000, []netip.Addr{addr4}))), nil, nil},
		{"empty", nil, nil, errMalformedPacket},
		{"garbage", []byte("this is not a DNS message at all"), nil, errMalformedPacket},
		{"truncated", valid[:len(valid)-5], nil, errMalformedPacket},
		{"header only, counts lie (the library stops at the end)", valid[:12], nil, nil},
		{"not a query opcode", pack(t, notify), nil, errMalformedPacket},
		{"oversized", append(slices.Clone(valid), make([]byte, maxPacketSize)...), nil, errPacketTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePacket(tt.pkt)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if !slices.EqualFunc(got, tt.want, func(x, y announcement) bool {
				return x.Peer == y.Peer && x.Port == y.Port && x.TTL == y.TTL && slices.Equal(x.Addrs, y.Addrs)
			}) {
				t.Errorf("announcements = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestAnswer(t *testing.T) {
	self, other := testPeer(t, 1), testPeer(t, 2)
	rs := ourRecords(self, 7000, []netip.Addr{addr4, addr6})
	inst, host := instanceName(self), hostName(self)
	q := func(name string, typ, class uint16, known ...dns.RR) *dns.Msg {
		m := &dns.Msg{Question: []dns.Question{{Name: name, Qtype: typ, Qclass: class}}}
		m.Answer = known
		return m
	}
	withTTL := func(rr dns.RR, ttl uint32) dns.RR {
		c := dns.Copy(rr)
		c.Header().Ttl = ttl
		return c
	}
	both := q(inst, dns.TypeSRV, dns.ClassINET)
	both.Question = append(both.Question, dns.Question{Name: host, Qtype: dns.TypeA, Qclass: dns.ClassINET})
	tests := []struct {
		name       string
		m          *dns.Msg
		ans, extra string // record types in order
	}{
		{"service enumeration", q(servicesName, dns.TypePTR, dns.ClassINET), "PTR", ""},
		{"service PTR", q(ServiceName, dns.TypePTR, dns.ClassINET), "PTR", "SRV TXT A AAAA"},
		{"service ANY", q(ServiceName, dns.TypeANY, dns.ClassINET), "PTR", "SRV TXT A AAAA"},
		{"service PTR, unicast response bit", q(ServiceName, dns.TypePTR, dns.ClassINET|unicastResp), "PTR", "SRV TXT A AAAA"},
		{"service PTR, class ANY", q(ServiceName, dns.TypePTR, dns.ClassANY), "PTR", "SRV TXT A AAAA"},
		{"service PTR, upper case", q(strings.ToUpper(ServiceName), dns.TypePTR, dns.ClassINET), "PTR", "SRV TXT A AAAA"},
		{"our SRV", q(inst, dns.TypeSRV, dns.ClassINET), "SRV", "A AAAA"},
		{"our TXT", q(inst, dns.TypeTXT, dns.ClassINET), "TXT", ""},
		{"our instance, ANY", q(inst, dns.TypeANY, dns.ClassINET), "SRV TXT", "A AAAA"},
		{"our A", q(host, dns.TypeA, dns.ClassINET), "A", "AAAA"},
		{"our AAAA", q(host, dns.TypeAAAA, dns.ClassINET), "AAAA", "A"},
		{"our host, ANY", q(host, dns.TypeANY, dns.ClassINET), "A AAAA", ""},
		{"SRV and A: A not repeated", both, "SRV A", "AAAA"},
		{"other peer's SRV", q(instanceName(other), dns.TypeSRV, dns.ClassINET), "", ""},
		{"other service", q("_http._tcp.local.", dns.TypePTR, dns.ClassINET), "", ""},
		{"service A", q(ServiceName, dns.TypeA, dns.ClassINET), "", ""},
		{"class CHAOS", q(ServiceName, dns.TypePTR, dns.ClassCHAOS), "", ""},
		{"known answer, fresh", q(ServiceName, dns.TypePTR, dns.ClassINET, withTTL(rs.ptr, ttlOther/2)), "", ""},
		{"known answer, half expired", q(ServiceName, dns.TypePTR, dns.ClassINET, withTTL(rs.ptr, ttlOther/2-1)), "PTR", "SRV TXT A AAAA"},
		{"known SRV with cache-flush bit", q(inst, dns.TypeSRV, dns.ClassINET, outgoing([]dns.RR{rs.srv}, false, false)...), "", ""},
		{"known answer of another peer", q(ServiceName, dns.TypePTR, dns.ClassINET, ourRecords(other, 1, nil).ptr), "PTR", "SRV TXT A AAAA"},
		{"a response", buildResponse(other, 1, nil, false), "", ""},
	}
	types := func(rrs []dns.RR) string {
		var s []string
		for _, rr := range rrs {
			s = append(s, dns.TypeToString[rr.Header().Rrtype])
		}
		return strings.Join(s, " ")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ans, extra := answer(tt.m, rs)
			if types(ans) != tt.ans || types(extra) != tt.extra {
				t.Errorf("answer %q, additional %q; want %q, %q", types(ans), types(extra), tt.ans, tt.extra)
			}
		})
	}
}

// An answer to a legacy unicast query (RFC 6762 §6.7) carries the query's
// id and question, TTLs of at most 10 s and no cache-flush bit; a multicast
// answer has id 0, no question and the bit on unique records.
func TestBuildAnswer(t *testing.T) {
	self := testPeer(t, 1)
	rs := ourRecords(self, 7000, []netip.Addr{addr4})
	query := &dns.Msg{MsgHdr: dns.MsgHdr{Id: 0xbeef}, Question: []dns.Question{{Name: instanceName(self), Qtype: dns.TypeSRV, Qclass: dns.ClassINET}}}
	ans, extra := answer(query, rs)
	for _, legacy := range []bool{true, false} {
		var m dns.Msg
		if err := m.Unpack(pack(t, buildAnswer(query, ans, extra, legacy))); err != nil {
			t.Fatal(err)
		}
		if !m.Response || !m.Authoritative || len(m.Answer) != 1 || len(m.Extra) != 1 {
			t.Fatalf("legacy %v: answer %v", legacy, &m)
		}
		for _, rr := range slices.Concat(m.Answer, m.Extra) {
			h := rr.Header()
			if legacy && (h.Ttl > ttlLegacy || h.Class != dns.ClassINET) {
				t.Errorf("legacy answer record %v: want TTL <= %d and class IN", rr, ttlLegacy)
			}
			if !legacy && (h.Ttl != ttlHost || h.Class != dns.ClassINET|cacheFlush) {
				t.Errorf("multicast answer record %v: want TTL %d and cache flush", rr, ttlHost)
			}
		}
		if legacy && (m.Id != 0xbeef || !slices.Equal(m.Question, query.Question)) {
			t.Errorf("legacy answer id %#x, question %v; want the query's", m.Id, m.Question)
		}
		if !legacy && (m.Id != 0 || len(m.Question) != 0) {
			t.Errorf("multicast answer id %#x, question %v; want 0 and none", m.Id, m.Question)
		}
	}
}

func TestConflicting(t *testing.T) {
	self := testPeer(t, 1)
	rs := ourRecords(self, 7000, []netip.Addr{addr4, addr6})
	other := ourRecords(self, 7000, []netip.Addr{netip.MustParseAddr("10.66.0.1")}) // same PeerID, another host
	ours := buildResponse(self, 7000, []netip.Addr{addr4, addr6}, false)
	tests := []struct {
		name string
		m    *dns.Msg
		want bool
	}{
		{"our own response", ours, false},
		{"our own response from one link", buildResponse(self, 7000, []netip.Addr{addr4}, false), false},
		{"another host's address for our name", buildResponse(self, 7000, []netip.Addr{netip.MustParseAddr("10.66.0.1")}, false), true},
		{"another port", buildResponse(self, 7001, []netip.Addr{addr4}, false), true},
		{"another host's goodbye", buildResponse(self, 7001, []netip.Addr{addr4}, true), false},
		{"another peer", buildResponse(testPeer(t, 2), 7000, []netip.Addr{netip.MustParseAddr("10.66.0.1")}, false), false},
		{"a query", buildProbe(other), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := conflicting(tt.m, self, rs.unique()) != nil; got != tt.want {
				t.Errorf("conflicting = %v, want %v", got, tt.want)
			}
		})
	}
}

// Of two hosts probing for one name at once, the one whose records sort
// later wins (RFC 6762 §8.2), and both agree on it.
func TestProbeTieBreak(t *testing.T) {
	self := testPeer(t, 1)
	lo := ourRecords(self, 7000, []netip.Addr{netip.MustParseAddr("10.0.0.1")})
	hi := ourRecords(self, 7000, []netip.Addr{netip.MustParseAddr("10.0.0.2")})
	if !probeWins(buildProbe(hi), lo) {
		t.Error("the later address does not win")
	}
	if probeWins(buildProbe(lo), hi) {
		t.Error("the earlier address wins")
	}
	if probeWins(buildProbe(lo), lo) {
		t.Error("identical records win")
	}
	if probeWins(buildProbe(ourRecords(testPeer(t, 2), 7000, []netip.Addr{netip.MustParseAddr("10.0.0.9")})), lo) {
		t.Error("a probe for another name wins")
	}
}

// A host with two links on one segment hears its own probe on the other
// link, with that link's addresses: it is ours, and must not defer us,
// though by the tie-break alone it would win.
func TestOwnProbeOnAnotherLink(t *testing.T) {
	self := testPeer(t, 1)
	eth := ourRecords(self, 7000, []netip.Addr{netip.MustParseAddr("10.0.0.2")})
	wlan := ourRecords(self, 7000, []netip.Addr{netip.MustParseAddr("10.0.0.1")})
	ours := append(eth.unique(), wlan.unique()...)
	if !probeWins(buildProbe(eth), wlan) {
		t.Fatal("the case this guards against does not arise: the other link's probe does not win the tie-break")
	}
	if !ownProbe(buildProbe(eth), ours) {
		t.Error("our own probe from another link is not recognised as ours")
	}
	other := ourRecords(self, 7000, []netip.Addr{netip.MustParseAddr("10.0.0.9")})
	if ownProbe(buildProbe(other), ours) {
		t.Error("another host's probe for our name is taken for ours")
	}
}
