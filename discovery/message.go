package discovery

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/peernet/peernet/trust"
)

// DNS-SD names and record layout (RFC 6763). A node with PeerID P listening
// on port N owns these records on a link:
//
//	_services._dns-sd._udp.local. PTR _peernet._tcp.local.   (shared, 75 min)
//	_peernet._tcp.local.      PTR   P._peernet._tcp.local.     (shared, 75 min)
//	P._peernet._tcp.local.    SRV   0 0 N P.local.             (unique, 120 s)
//	P._peernet._tcp.local.    TXT   "v=1" "id=P"               (unique, 75 min)
//	P.local.                  A     each IPv4 address of the link (unique, 120 s)
//	P.local.                  AAAA  each IPv6 address of the link (unique, 120 s)
//
// The instance name and the host name are both P, the canonical text form of
// the PeerID (61 characters, one DNS label): a reader ignores an instance
// whose name is not a PeerID, and so a node cannot rename itself when another
// responder claims its name (RFC 6762 §9); it stops announcing instead. TTLs
// are those RFC 6762 §10 recommends: 120 s for records that name a host (SRV,
// A, AAAA), 75 minutes for the others. Unique records carry the cache-flush
// bit in multicast responses (RFC 6762 §10.2). The TXT record repeats the
// PeerID so a reader need not trust the name alone, and carries the protocol
// version: a reader ignores announcements of another version.
const (
	// ServiceName is the DNS-SD service type that PeerNet nodes announce.
	ServiceName = "_peernet._tcp.local."
	// ProtocolVersion is the value of the "v" key in the TXT record.
	ProtocolVersion = "1"

	// servicesName is the DNS-SD service type enumeration name (RFC 6763 §9).
	servicesName = "_services._dns-sd._udp.local."
	domainName   = "local."
	txtKeyVer    = "v"
	txtKeyPeer   = "id"
	cacheFlush   = 1 << 15 // top bit of a record's class (RFC 6762 §10.2)
	unicastResp  = 1 << 15 // top bit of a question's class (RFC 6762 §5.4)

	// ttlHost and ttlOther are our records' TTLs in seconds (RFC 6762 §10).
	ttlHost  = 120
	ttlOther = 75 * 60
	// ttlLegacy caps TTLs in answers to legacy unicast queries (RFC 6762 §6.7).
	ttlLegacy = 10
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

// records are the records a node owns on one link, with class IN and their
// full TTLs; the cache-flush bit is added when they are sent.
type records struct {
	self      trust.PeerID
	enum, ptr *dns.PTR
	srv       *dns.SRV
	txt       *dns.TXT
	addrs     []dns.RR // A and AAAA, at most maxPeerAddrs
}

// ourRecords returns the records of self listening on port at addrs (at
// most maxPeerAddrs of them are used).
func ourRecords(self trust.PeerID, port uint16, addrs []netip.Addr) records {
	inst, host := instanceName(self), hostName(self)
	hdr := func(name string, typ uint16, ttl uint32) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: ttl}
	}
	rs := records{
		self: self,
		enum: &dns.PTR{Hdr: hdr(servicesName, dns.TypePTR, ttlOther), Ptr: ServiceName},
		ptr:  &dns.PTR{Hdr: hdr(ServiceName, dns.TypePTR, ttlOther), Ptr: inst},
		srv:  &dns.SRV{Hdr: hdr(inst, dns.TypeSRV, ttlHost), Port: port, Target: host},
		txt: &dns.TXT{Hdr: hdr(inst, dns.TypeTXT, ttlOther), Txt: []string{
			txtKeyVer + "=" + ProtocolVersion,
			txtKeyPeer + "=" + self.String(),
		}},
	}
	for _, a := range addrs[:min(len(addrs), maxPeerAddrs)] {
		if a.Is4() {
			rs.addrs = append(rs.addrs, &dns.A{Hdr: hdr(host, dns.TypeA, ttlHost), A: net.IP(a.AsSlice())})
		} else {
			rs.addrs = append(rs.addrs, &dns.AAAA{Hdr: hdr(host, dns.TypeAAAA, ttlHost), AAAA: net.IP(a.AsSlice())})
		}
	}
	return rs
}

// unique returns the records only we may own: SRV, TXT, A and AAAA.
func (rs records) unique() []dns.RR {
	return append([]dns.RR{rs.srv, rs.txt}, rs.addrs...)
}

func isUnique(rr dns.RR) bool {
	switch rr.Header().Rrtype {
	case dns.TypeSRV, dns.TypeTXT, dns.TypeA, dns.TypeAAAA:
		return true
	}
	return false
}

// outgoing returns copies of rrs as they go on the wire: in a multicast
// response, unique records get the cache-flush bit; in an answer to a legacy
// unicast query, TTLs are capped at ttlLegacy and no bit is set; goodbye
// sets every TTL to 0.
func outgoing(rrs []dns.RR, legacy, goodbye bool) []dns.RR {
	out := make([]dns.RR, 0, len(rrs))
	for _, rr := range rrs {
		c := dns.Copy(rr)
		h := c.Header()
		switch {
		case goodbye:
			h.Ttl = 0
		case legacy:
			h.Ttl = min(h.Ttl, ttlLegacy)
		}
		if !legacy && isUnique(rr) {
			h.Class |= cacheFlush
		}
		out = append(out, c)
	}
	return out
}

// announcement is what one mDNS response says about one PeerNet instance.
type announcement struct {
	Peer  trust.PeerID
	Port  uint16
	Addrs []netip.Addr // at most maxPeerAddrs, valid unicast addresses
	TTL   uint32       // seconds; 0 is a goodbye
}

// buildResponse returns the unsolicited response (announcement) of self
// listening on port at addrs: every record in the answer section (RFC 6762
// §8.3); goodbye gives them all TTL 0 (§10.1). Addresses beyond
// maxPeerAddrs are left out.
func buildResponse(self trust.PeerID, port uint16, addrs []netip.Addr, goodbye bool) *dns.Msg {
	rs := ourRecords(self, port, addrs)
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}, Compress: true}
	m.Answer = outgoing(append([]dns.RR{rs.ptr}, rs.unique()...), false, goodbye)
	return m
}

// buildQuery returns our query for every PeerNet instance on the link. It
// asks for multicast answers (QM), so every browser on the link learns from
// them, and lists our own PTR as a known answer (RFC 6762 §7.1): we never
// answer our own query, and nobody else owns that record.
func buildQuery(self trust.PeerID) *dns.Msg {
	m := &dns.Msg{Compress: true}
	m.Question = []dns.Question{{Name: ServiceName, Qtype: dns.TypePTR, Qclass: dns.ClassINET}}
	m.Answer = []dns.RR{ourRecords(self, 1, nil).ptr}
	return m
}

// buildProbe returns a probe for our unique names (RFC 6762 §8.1): a query
// of type ANY for the instance and host names, asking for unicast answers,
// with the records we intend to own in the authority section.
func buildProbe(rs records) *dns.Msg {
	m := &dns.Msg{Compress: true}
	m.Question = []dns.Question{
		{Name: rs.srv.Hdr.Name, Qtype: dns.TypeANY, Qclass: dns.ClassINET | unicastResp},
		{Name: rs.srv.Target, Qtype: dns.TypeANY, Qclass: dns.ClassINET | unicastResp},
	}
	for _, rr := range rs.unique() {
		m.Ns = append(m.Ns, dns.Copy(rr))
	}
	return m
}

// buildAnswer returns our response to query q with the records ans and
// extra (see answer). A legacy unicast answer (RFC 6762 §6.7) carries q's id
// and question; any other is a plain mDNS response.
func buildAnswer(q *dns.Msg, ans, extra []dns.RR, legacy bool) *dns.Msg {
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}, Compress: true}
	if legacy {
		m.Id = q.Id
		m.Question = slices.Clone(q.Question)
		for i := range m.Question {
			m.Question[i].Qclass &^= unicastResp
		}
	}
	m.Answer = outgoing(ans, legacy, false)
	m.Extra = outgoing(extra, legacy, false)
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

// answer returns what we answer to query m from our records rs on the
// link: the records asked for in the answer section, and in the additional
// section those the asker will want next (RFC 6763 §12: for a PTR the SRV,
// TXT and addresses; for an SRV the addresses; RFC 6762 §6.2: for an A the
// AAAA records, and the other way round). An answer the query already lists
// as known with at least half its TTL left is left out (RFC 6762 §7.1).
// Both are empty if m asks nothing of ours.
func answer(m *dns.Msg, rs records) (ans, extra []dns.RR) {
	if m.Response {
		return nil, nil
	}
	inst, host := strings.ToLower(rs.srv.Hdr.Name), strings.ToLower(rs.srv.Target)
	var v4, v6 []dns.RR
	for _, rr := range rs.addrs {
		if rr.Header().Rrtype == dns.TypeA {
			v4 = append(v4, rr)
		} else {
			v6 = append(v6, rr)
		}
	}
	add := func(list *[]dns.RR, rrs ...dns.RR) {
		for _, rr := range rrs {
			if !slices.Contains(*list, rr) {
				*list = append(*list, rr)
			}
		}
	}
	for _, q := range m.Question {
		if c := q.Qclass &^ unicastResp; c != dns.ClassINET && c != dns.ClassANY {
			continue
		}
		is := func(t uint16) bool { return q.Qtype == t || q.Qtype == dns.TypeANY }
		switch strings.ToLower(q.Name) {
		case servicesName:
			if is(dns.TypePTR) {
				add(&ans, rs.enum)
			}
		case ServiceName:
			if is(dns.TypePTR) {
				add(&ans, rs.ptr)
				add(&extra, rs.srv, rs.txt)
				add(&extra, rs.addrs...)
			}
		case inst:
			if is(dns.TypeSRV) {
				add(&ans, rs.srv)
				add(&extra, rs.addrs...)
			}
			if is(dns.TypeTXT) {
				add(&ans, rs.txt)
			}
		case host:
			if is(dns.TypeA) {
				add(&ans, v4...)
				add(&extra, v6...)
			}
			if is(dns.TypeAAAA) {
				add(&ans, v6...)
				add(&extra, v4...)
			}
		}
	}
	ans = slices.DeleteFunc(ans, func(rr dns.RR) bool { return knownAnswer(m, rr) })
	extra = slices.DeleteFunc(extra, func(rr dns.RR) bool { return slices.Contains(ans, rr) })
	if len(ans) == 0 {
		return nil, nil
	}
	return ans, extra
}

// knownAnswer reports whether query m lists rr as a known answer with at
// least half of rr's TTL left.
func knownAnswer(m *dns.Msg, rr dns.RR) bool {
	for _, k := range m.Answer {
		if k.Header().Ttl >= rr.Header().Ttl/2 && sameRecord(k, rr) {
			return true
		}
	}
	return false
}

// sameRecord reports whether a and b are the same record, ignoring TTL and
// the cache-flush bit (name case is ignored by dns.IsDuplicate).
func sameRecord(a, b dns.RR) bool {
	if a.Header().Class&^cacheFlush != b.Header().Class&^cacheFlush {
		return false
	}
	a, b = dns.Copy(a), dns.Copy(b)
	a.Header().Class, b.Header().Class = dns.ClassINET, dns.ClassINET
	return dns.IsDuplicate(a, b)
}

// conflicting returns a record in response m that claims one of our unique
// names (instance or host name) with data other than ours: another
// responder wants the name (RFC 6762 §9). ours are every record we send, on
// any link, so that our own packets, looped back, are no conflict. It
// returns nil if there is none.
func conflicting(m *dns.Msg, self trust.PeerID, ours []dns.RR) dns.RR {
	if !m.Response {
		return nil
	}
	inst, host := strings.ToLower(instanceName(self)), strings.ToLower(hostName(self))
	for _, rr := range slices.Concat(m.Answer, m.Extra) {
		h := rr.Header()
		if h.Ttl == 0 || !isUnique(rr) {
			continue
		}
		if name := strings.ToLower(h.Name); name != inst && name != host {
			continue
		}
		if !slices.ContainsFunc(ours, func(o dns.RR) bool { return sameRecord(o, rr) }) {
			return rr
		}
	}
	return nil
}

// probeWins reports whether probe m, from another host probing for one of
// our unique names at the same time as we, wins the tie-break of RFC 6762
// §8.2: for each name, its authority records and ours, each sorted by
// class, type and rdata, are compared in turn, and the lexicographically
// later set wins. Identical sets (our own probe, looped back) do not win.
func probeWins(m *dns.Msg, rs records) bool {
	if m.Response || len(m.Ns) == 0 {
		return false
	}
	ours := rs.unique()
	for _, name := range []string{rs.srv.Hdr.Name, rs.srv.Target} {
		var theirs, mine []dns.RR
		for _, rr := range m.Ns {
			if strings.EqualFold(rr.Header().Name, name) {
				theirs = append(theirs, rr)
			}
		}
		if len(theirs) == 0 {
			continue
		}
		for _, rr := range ours {
			if strings.EqualFold(rr.Header().Name, name) {
				mine = append(mine, rr)
			}
		}
		if compareRecordSets(theirs, mine) > 0 {
			return true
		}
	}
	return false
}

// compareRecordSets orders two record sets as RFC 6762 §8.2 does.
func compareRecordSets(a, b []dns.RR) int {
	ka, kb := sortKeys(a), sortKeys(b)
	for i := range min(len(ka), len(kb)) {
		if c := bytes.Compare(ka[i], kb[i]); c != 0 {
			return c
		}
	}
	return len(ka) - len(kb)
}

// sortKeys returns each record's class, type and rdata in wire form,
// sorted: the order in which RFC 6762 §8.2 compares records.
func sortKeys(rrs []dns.RR) [][]byte {
	var keys [][]byte
	buf := make([]byte, 512)
	for _, rr := range rrs {
		c := dns.Copy(rr)
		h := c.Header()
		h.Name, h.Ttl, h.Class = ".", 0, h.Class&^cacheFlush
		n, err := dns.PackRR(c, buf, 0, nil, false)
		if err != nil {
			continue
		}
		// "." packs to one byte; then type (2), class (2), TTL (4) and
		// rdata length (2) precede the rdata.
		key := slices.Concat(buf[3:5], buf[1:3], buf[11:n])
		keys = append(keys, key)
	}
	slices.SortFunc(keys, bytes.Compare)
	return keys
}
