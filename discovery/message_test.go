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
		ttl       uint32
		wantAddrs []netip.Addr
	}{
		{"ipv4 only", []netip.Addr{addr4}, 120, []netip.Addr{addr4}},
		{"ipv4 and ipv6", []netip.Addr{addr4, addr6, addrLL}, 120, []netip.Addr{addr4, addr6, addrLL}},
		{"no address", nil, 120, nil},
		{"capped", many, 120, many[:maxPeerAddrs]},
		{"goodbye", []netip.Addr{addr4}, 0, []netip.Addr{addr4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m dns.Msg
			if err := m.Unpack(pack(t, buildResponse(self, 7000, tt.addrs, tt.ttl))); err != nil {
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
				if h.Ttl != tt.ttl {
					t.Errorf("%s TTL = %d, want %d", dns.TypeToString[h.Rrtype], h.Ttl, tt.ttl)
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
	var m dns.Msg
	if err := m.Unpack(pack(t, buildQuery())); err != nil {
		t.Fatal(err)
	}
	want := dns.Question{Name: ServiceName, Qtype: dns.TypePTR, Qclass: dns.ClassINET}
	if m.Response || m.Id != 0 || len(m.Question) != 1 || m.Question[0] != want {
		t.Errorf("query = %v, want one QM question %v", &m, want)
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
	resp := buildResponse(a, 7000, []netip.Addr{addr4, addr6}, 120)
	good := announcement{Peer: a, Port: 7000, Addrs: []netip.Addr{addr4, addr6}, TTL: 120}

	// PTR in the answer, the rest in the additional section, as in an
	// answer to a PTR query.
	split := resp.Copy()
	split.Answer, split.Extra = resp.Answer[:1], resp.Answer[1:]

	two := resp.Copy()
	two.Answer = append(two.Answer, buildResponse(b, 7001, []netip.Addr{netip.MustParseAddr("10.77.0.3")}, 60).Answer...)

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
		{"two instances", pack(t, two), []announcement{good, {Peer: b, Port: 7001, Addrs: []netip.Addr{netip.MustParseAddr("10.77.0.3")}, TTL: 60}}, nil},
		{"names in upper case", pack(t, upper), []announcement{good}, nil},
		{"no address records", pack(t, rewrite(resp, func(rr dns.RR) dns.RR {
			if rr.Header().Rrtype == dns.TypeA || rr.Header().Rrtype == dns.TypeAAAA {
				return nil
			}
			return rr
		})), []announcement{{Peer: a, Port: 7000, TTL: 120}}, nil},
		{"unusable addresses dropped", pack(t, badAddrs), []announcement{{Peer: a, Port: 7000, Addrs: []netip.Addr{addr4}, TTL: 120}}, nil},
		{"ttl capped", pack(t, hugeTTL), []announcement{{Peer: a, Port: 7000, Addrs: []netip.Addr{addr4, addr6}, TTL: maxRecordTTL}}, nil},
		{"goodbye", pack(t, buildResponse(a, 7000, []netip.Addr{addr4}, 0)), []announcement{{Peer: a}}, nil},
		{"goodbye with PTR only", pack(t, ptrOnlyGoodbye), []announcement{{Peer: a}}, nil},
		{"no TXT", pack(t, rewrite(resp, dropType(dns.TypeTXT))), nil, nil},
		{"no SRV", pack(t, rewrite(resp, dropType(dns.TypeSRV))), nil, nil},
		{"other version", pack(t, rewrite(resp, setTXT("v=2", "id="+a.String()))), nil, nil},
		{"no version", pack(t, rewrite(resp, setTXT("id="+a.String()))), nil, nil},
		{"TXT names another peer", pack(t, rewrite(resp, setTXT("v=1", "id="+b.String()))), nil, nil},
		{"TXT keys any case, first wins", pack(t, rewrite(resp, setTXT("V=1", "ID="+a.String(), "id="+b.String()))), []announcement{good}, nil},
		{"instance is not a PeerID", pack(t, notPeerID), nil, nil},
		{"class not IN", pack(t, otherClass), nil, nil},
		{"query", pack(t, buildQuery()), nil, nil},
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

func TestAsksFor(t *testing.T) {
	self, other := testPeer(t, 1), testPeer(t, 2)
	q := func(name string, typ, class uint16, known ...dns.RR) *dns.Msg {
		m := &dns.Msg{Question: []dns.Question{{Name: name, Qtype: typ, Qclass: class}}}
		m.Answer = known
		return m
	}
	knownPTR := func(id trust.PeerID, ttl uint32) dns.RR {
		return &dns.PTR{Hdr: dns.RR_Header{Name: ServiceName, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: ttl}, Ptr: instanceName(id)}
	}
	resp := buildResponse(other, 1, nil, 120)
	tests := []struct {
		name string
		m    *dns.Msg
		want bool
	}{
		{"service PTR", q(ServiceName, dns.TypePTR, dns.ClassINET), true},
		{"service ANY", q(ServiceName, dns.TypeANY, dns.ClassINET), true},
		{"service PTR, unicast response bit", q(ServiceName, dns.TypePTR, dns.ClassINET|unicastResp), true},
		{"service PTR, class ANY", q(ServiceName, dns.TypePTR, dns.ClassANY), true},
		{"service PTR, upper case", q(strings.ToUpper(ServiceName), dns.TypePTR, dns.ClassINET), true},
		{"our SRV", q(instanceName(self), dns.TypeSRV, dns.ClassINET), true},
		{"our TXT", q(instanceName(self), dns.TypeTXT, dns.ClassINET), true},
		{"our A", q(hostName(self), dns.TypeA, dns.ClassINET), true},
		{"our AAAA", q(hostName(self), dns.TypeAAAA, dns.ClassINET), true},
		{"other peer's SRV", q(instanceName(other), dns.TypeSRV, dns.ClassINET), false},
		{"other service", q("_http._tcp.local.", dns.TypePTR, dns.ClassINET), false},
		{"service A", q(ServiceName, dns.TypeA, dns.ClassINET), false},
		{"class CHAOS", q(ServiceName, dns.TypePTR, dns.ClassCHAOS), false},
		{"known answer, fresh", q(ServiceName, dns.TypePTR, dns.ClassINET, knownPTR(self, 60)), false},
		{"known answer, half expired", q(ServiceName, dns.TypePTR, dns.ClassINET, knownPTR(self, 59)), true},
		{"known answer of another peer", q(ServiceName, dns.TypePTR, dns.ClassINET, knownPTR(other, 120)), true},
		{"a response", resp, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := asksFor(tt.m, self, 120); got != tt.want {
				t.Errorf("asksFor = %v, want %v", got, tt.want)
			}
		})
	}
}
