package discovery

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/peernet/peernet/trust"
)

// DNS-SD names and record layout (RFC 6763). A node with PeerID P listening
// on port N announces, with every record in the answer section:
//
//	_peernet._tcp.local.      PTR   P._peernet._tcp.local.       (shared)
//	P._peernet._tcp.local.    SRV   0 0 N P.local.               (unique)
//	P._peernet._tcp.local.    TXT   "v=1" "id=P"                 (unique)
//	P.local.                  A     each IPv4 address of the link (unique)
//	P.local.                  AAAA  each IPv6 address of the link (unique)
//
// P is the canonical text form of the PeerID (61 characters, one DNS label).
// Unique records carry the cache-flush bit (RFC 6762 §10.2). The TXT record
// repeats the PeerID so a reader need not trust the name alone, and carries
// the protocol version: a reader ignores announcements of another version.
const (
	// ServiceName is the DNS-SD service type that PeerNet nodes announce.
	ServiceName = "_peernet._tcp.local."
	// ProtocolVersion is the value of the "v" key in the TXT record.
	ProtocolVersion = "1"

	domainName  = "local."
	txtKeyVer   = "v"
	txtKeyPeer  = "id"
	cacheFlush  = 1 << 15 // top bit of a record's class (RFC 6762 §10.2)
	unicastResp = 1 << 15 // top bit of a question's class (RFC 6762 §5.4)
)

// Packet limits.
const (
	// maxPacketSize is the largest mDNS packet read; anything longer is
	// dropped before parsing (RFC 6762 §17 allows up to 9000 bytes).
	maxPacketSize = 9000
	// maxPeerAddrs bounds the addresses kept for one peer, and those read
	// from one announcement.
	maxPeerAddrs = 4
	// maxRecordTTL caps the lifetime a remote announcement may claim.
	maxRecordTTL = 75 * 60
)

func instanceName(id trust.PeerID) string { return id.String() + "." + ServiceName }

func hostName(id trust.PeerID) string { return id.String() + "." + domainName }

// announcement is what one mDNS response says about one PeerNet instance.
type announcement struct {
	Peer  trust.PeerID
	Port  uint16
	Addrs []netip.Addr // at most maxPeerAddrs, valid unicast addresses
	TTL   uint32       // seconds; 0 is a goodbye
}

// buildResponse returns the unsolicited response (announcement) of self
// listening on port at addrs, whose records live for ttl seconds; ttl 0
// makes it a goodbye. Addresses beyond maxPeerAddrs are left out.
func buildResponse(self trust.PeerID, port uint16, addrs []netip.Addr, ttl uint32) *dns.Msg {
	inst, host := instanceName(self), hostName(self)
	hdr := func(name string, typ uint16, class uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: typ, Class: class, Ttl: ttl}
	}
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}, Compress: true}
	m.Answer = []dns.RR{
		&dns.PTR{Hdr: hdr(ServiceName, dns.TypePTR, dns.ClassINET), Ptr: inst},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV, dns.ClassINET|cacheFlush), Port: port, Target: host},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT, dns.ClassINET|cacheFlush), Txt: []string{
			txtKeyVer + "=" + ProtocolVersion,
			txtKeyPeer + "=" + self.String(),
		}},
	}
	for _, a := range addrs[:min(len(addrs), maxPeerAddrs)] {
		if a.Is4() {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(host, dns.TypeA, dns.ClassINET|cacheFlush), A: net.IP(a.AsSlice())})
		} else {
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr(host, dns.TypeAAAA, dns.ClassINET|cacheFlush), AAAA: net.IP(a.AsSlice())})
		}
	}
	return m
}

// buildQuery returns a query for every PeerNet instance on the link. It asks
// for multicast answers (QM), so every browser on the link learns from them.
func buildQuery() *dns.Msg {
	m := &dns.Msg{}
	m.Question = []dns.Question{{Name: ServiceName, Qtype: dns.TypePTR, Qclass: dns.ClassINET}}
	return m
}

// decodePacket unpacks one mDNS packet. It rejects packets longer than
// maxPacketSize before parsing, and those that are not standard queries or
// responses (RFC 6762 §18.3, §18.11).
func decodePacket(pkt []byte) (*dns.Msg, error) {
	if len(pkt) > maxPacketSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errPacketTooLarge, len(pkt), maxPacketSize)
	}
	m := new(dns.Msg)
	if err := m.Unpack(pkt); err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedPacket, err)
	}
	if m.Opcode != dns.OpcodeQuery || m.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%w: opcode %d, rcode %d", errMalformedPacket, m.Opcode, m.Rcode)
	}
	return m, nil
}

// parsePacket returns the PeerNet announcements in one packet; a query yields
// none. It never trusts what it reads beyond the checks below: an instance is
// reported only if its name is a valid PeerID and, unless it is a goodbye,
// it has an SRV record and a TXT record of our version naming the same
// PeerID.
func parsePacket(pkt []byte) ([]announcement, error) {
	m, err := decodePacket(pkt)
	if err != nil {
		return nil, err
	}
	if !m.Response {
		return nil, nil
	}
	return announcements(m), nil
}

// announcements extracts PeerNet instances from a decoded response, in the
// order their records first appear.
func announcements(m *dns.Msg) []announcement {
	var (
		order  []string // instance names, lower case, by first appearance
		seen   = map[string]bool{}
		ptrTTL = map[string]uint32{}
		srvs   = map[string]*dns.SRV{}
		txts   = map[string]*dns.TXT{}
		addrs  = map[string][]netip.Addr{}
	)
	see := func(inst string) {
		if !seen[inst] {
			seen[inst] = true
			order = append(order, inst)
		}
	}
	for _, rr := range slices.Concat(m.Answer, m.Extra) {
		h := rr.Header()
		if h.Class&^cacheFlush != dns.ClassINET {
			continue
		}
		name := strings.ToLower(h.Name)
		switch r := rr.(type) {
		case *dns.PTR:
			if name == ServiceName {
				inst := strings.ToLower(r.Ptr)
				see(inst)
				ptrTTL[inst] = h.Ttl
			}
		case *dns.SRV:
			if strings.HasSuffix(name, "."+ServiceName) {
				see(name)
				srvs[name] = r
			}
		case *dns.TXT:
			txts[name] = r
		case *dns.A:
			addrs[name] = appendAddr(addrs[name], r.A)
		case *dns.AAAA:
			addrs[name] = appendAddr(addrs[name], r.AAAA)
		}
	}

	var out []announcement
	for _, inst := range order {
		label, ok := strings.CutSuffix(inst, "."+ServiceName)
		if !ok {
			continue
		}
		peer, err := trust.ParsePeerID(label)
		if err != nil {
			continue
		}
		srv := srvs[inst]
		if ttl, ok := ptrTTL[inst]; (ok && ttl == 0) || (srv != nil && srv.Hdr.Ttl == 0) {
			out = append(out, announcement{Peer: peer})
			continue
		}
		if srv == nil || srv.Port == 0 || !txtMatches(txts[inst], peer) {
			continue
		}
		out = append(out, announcement{
			Peer:  peer,
			Port:  srv.Port,
			Addrs: addrs[strings.ToLower(srv.Target)],
			TTL:   min(max(srv.Hdr.Ttl, 1), maxRecordTTL),
		})
	}
	return out
}

// appendAddr adds ip to list if it is a usable unicast address not yet in
// list and list is not full.
func appendAddr(list []netip.Addr, ip net.IP) []netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || len(list) >= maxPeerAddrs {
		return list
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) ||
		slices.Contains(list, a) {
		return list
	}
	return append(list, a)
}

// txtMatches reports whether txt carries our protocol version and names
// peer. Keys are case-insensitive (RFC 6763 §6.4); a repeated key counts
// only the first time (§6.4).
func txtMatches(txt *dns.TXT, peer trust.PeerID) bool {
	if txt == nil {
		return false
	}
	var ver, id string
	var haveVer, haveID bool
	for _, kv := range txt.Txt {
		k, v, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case txtKeyVer:
			if !haveVer {
				ver, haveVer = v, true
			}
		case txtKeyPeer:
			if !haveID {
				id, haveID = v, true
			}
		}
	}
	if ver != ProtocolVersion || !haveID {
		return false
	}
	got, err := trust.ParsePeerID(id)
	return err == nil && got == peer
}

// asksFor reports whether the query m asks for any of self's records. A
// query that only asks for the service PTR and already lists our PTR as a
// known answer with at least half its lifetime left gets no answer (RFC 6762
// §7.1).
func asksFor(m *dns.Msg, self trust.PeerID, ttl uint32) bool {
	if m.Response {
		return false
	}
	inst, host := strings.ToLower(instanceName(self)), strings.ToLower(hostName(self))
	var askPTR, askOther bool
	for _, q := range m.Question {
		if c := q.Qclass &^ unicastResp; c != dns.ClassINET && c != dns.ClassANY {
			continue
		}
		name, anyType := strings.ToLower(q.Name), q.Qtype == dns.TypeANY
		switch {
		case name == ServiceName && (q.Qtype == dns.TypePTR || anyType):
			askPTR = true
		case name == inst && (q.Qtype == dns.TypeSRV || q.Qtype == dns.TypeTXT || anyType):
			askOther = true
		case name == host && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA || anyType):
			askOther = true
		}
	}
	if askOther {
		return true
	}
	if !askPTR {
		return false
	}
	for _, rr := range m.Answer {
		if p, ok := rr.(*dns.PTR); ok && strings.EqualFold(p.Hdr.Name, ServiceName) &&
			strings.EqualFold(p.Ptr, inst) && p.Hdr.Ttl >= ttl/2 {
			return false
		}
	}
	return true
}
