package discovery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// mDNS transport (RFC 6762 §3) and timing.
const (
	mdnsPort = 5353
	// rescanInterval is how often the interface list is re-read, to join
	// new links and re-announce when addresses change.
	rescanInterval = 5 * time.Second
	// minAnswerInterval limits how often we multicast our records on one
	// link and address family (RFC 6762 §6); queries in between share the
	// next answer.
	minAnswerInterval = time.Second
	// answerDelayMin and answerDelayMax bound the random delay before answering a query for our
	// shared PTR record, so that responders do not all answer at once
	// (RFC 6762 §6: 20–120 ms).
	answerDelayMin, answerDelayMax = 20 * time.Millisecond, 120 * time.Millisecond
	// firstQueryMin and firstQueryMax bound the random delay before the first query
	// (RFC 6762 §5.2: 20–120 ms).
	firstQueryMin, firstQueryMax = 20 * time.Millisecond, 120 * time.Millisecond

	// Probing (RFC 6762 §8.1): probeCount probes probeGap apart, the first
	// after a random delay of up to probeGap; we own our names if nobody
	// objects within probeGap of the last.
	probeCount = 3
	probeGap   = 250 * time.Millisecond
	// probeDefer is the wait after losing a simultaneous-probe tie-break
	// (RFC 6762 §8.2).
	probeDefer = time.Second
	// conflictRetry is how long we stay silent after another responder
	// claimed our names while we probed, before probing again.
	conflictRetry = 10 * time.Second

	// maxUnicastPerSecond bounds the unicast answers (to legacy and QU
	// queries) we send on one link in a second, so that queries with a
	// forged source cannot make us flood a host.
	maxUnicastPerSecond = 20
)

// announceBurst are the gaps between the announcements that follow the first
// one at start or after a link change (RFC 6762 §8.3: at least two, one
// second apart, then doubling).
var announceBurst = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}

var (
	group4 = netip.MustParseAddr("224.0.0.251")
	group6 = netip.MustParseAddr("ff02::fb")
)

// runner is the state of one Run; only its loop goroutine touches it, except
// the read goroutines, which only use the sockets and the packets channel.
type runner struct {
	cfg     *MDNSConfig
	log     hclog.Logger
	v4      *ipv4.PacketConn // nil if IPv4 is unavailable
	v6      *ipv6.PacketConn // nil if IPv6 is unavailable
	tracker *tracker

	links            map[int]*link // by interface index
	joined4, joined6 map[int]bool
	linkSig          string
	lastSent         map[sendKey]time.Time
	answerDue        map[sendKey]*pendingAnswer // multicast answers waiting to go

	// Probing and announcing. We answer and announce only once announced;
	// a zero time means "not scheduled". The transitions:
	//
	//	state       event                               next
	//	probing     probeCount probes, probeGap silent  announced
	//	probing     a response claims our names         probing, after conflictRetry
	//	probing     a simultaneous probe wins (§8.2)    probing, after probeDefer
	//	announced   a response claims our names         probing, after 0–250 ms
	//	any         links or their addresses change     probing, after 0–250 ms
	announced           bool
	everAnnounced       bool // we sent records others may have cached
	probeStep           int
	nextProbe           time.Time
	nextAnnounce        time.Time
	announceStep        int
	nextScan, nextQuery time.Time
	queryGap            time.Duration

	unicastSent map[int]unicastWindow // by interface index

	packets chan packet
	done    chan struct{}
	wg      sync.WaitGroup
}

// link is an interface we announce and browse on.
type link struct {
	index    int
	name     string
	loopback bool
	addrs    []netip.Addr // every address of the link, best first
	announce []netip.Addr // what we announce there, at most maxPeerAddrs
	recs     records      // our records on this link
	v4, v6   bool         // joined the group of that family
}

// pendingAnswer is a multicast answer waiting for its time: the union of
// what the queries it answers asked for.
type pendingAnswer struct {
	due        time.Time
	ans, extra []dns.RR
}

// unicastWindow counts the unicast answers sent on a link in the second
// that started at start.
type unicastWindow struct {
	start time.Time
	n     int
}

type sendKey struct {
	index int
	v6    bool
}

type packet struct {
	data    []byte
	ifindex int
	src     netip.AddrPort
	dst     netip.Addr
	v6      bool
}

func (m *MDNS) open() (*runner, error) {
	r := &runner{
		cfg:         &m.cfg,
		log:         m.log,
		tracker:     newTracker(m.cfg.Self, m.cfg.Filter, m.cfg.MaxTracked),
		links:       map[int]*link{},
		joined4:     map[int]bool{},
		joined6:     map[int]bool{},
		lastSent:    map[sendKey]time.Time{},
		answerDue:   map[sendKey]*pendingAnswer{},
		unicastSent: map[int]unicastWindow{},
		packets:     make(chan packet, 16),
		done:        make(chan struct{}),
	}
	var err4, err6 error
	r.v4, err4 = listen4()
	r.v6, err6 = listen6()
	if r.v4 == nil && r.v6 == nil {
		return nil, fmt.Errorf("%w: %w", ErrNoSocket, errors.Join(err4, err6))
	}
	if err4 != nil {
		m.log.Warn("mDNS over IPv4 unavailable", "error", err4)
	}
	if err6 != nil {
		m.log.Debug("mDNS over IPv6 unavailable", "error", err6)
	}
	return r, nil
}

func listen4() (*ipv4.PacketConn, error) {
	c, err := listenReuse("udp4", fmt.Sprintf("0.0.0.0:%d", mdnsPort))
	if err != nil {
		return nil, fmt.Errorf("listening on IPv4: %w", err)
	}
	p := ipv4.NewPacketConn(c)
	err = errors.Join(
		p.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true),
		p.SetMulticastTTL(255), // RFC 6762 §11
		p.SetMulticastLoopback(true),
	)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("setting IPv4 socket options: %w", err)
	}
	return p, nil
}

func listen6() (*ipv6.PacketConn, error) {
	c, err := listenReuse("udp6", fmt.Sprintf("[::]:%d", mdnsPort))
	if err != nil {
		return nil, fmt.Errorf("listening on IPv6: %w", err)
	}
	p := ipv6.NewPacketConn(c)
	err = errors.Join(
		p.SetControlMessage(ipv6.FlagInterface|ipv6.FlagDst, true),
		p.SetMulticastHopLimit(255),
		p.SetMulticastLoopback(true),
	)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("setting IPv6 socket options: %w", err)
	}
	return p, nil
}

func listenReuse(network, addr string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: reuseAddrPort}
	return lc.ListenPacket(context.Background(), network, addr)
}

func (r *runner) loop(ctx context.Context, found func(Hint)) {
	if r.v4 != nil {
		r.wg.Go(func() { r.read(r.read4) })
	}
	if r.v6 != nil {
		r.wg.Go(func() { r.read(r.read6) })
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := time.Now()
		if !now.Before(r.nextScan) {
			r.scan(now)
		}
		if !r.nextProbe.IsZero() && !now.Before(r.nextProbe) {
			r.probe(now)
		}
		if !r.nextAnnounce.IsZero() && !now.Before(r.nextAnnounce) {
			r.announce(now)
		}
		if !now.Before(r.nextQuery) {
			r.query(now)
		}
		wake := r.nextScan
		for _, t := range []time.Time{r.nextProbe, r.nextAnnounce, r.nextQuery} {
			if !t.IsZero() && t.Before(wake) {
				wake = t
			}
		}
		for k, pa := range r.answerDue {
			if now.Before(pa.due) {
				if pa.due.Before(wake) {
					wake = pa.due
				}
				continue
			}
			delete(r.answerDue, k)
			if l := r.links[k.index]; l != nil {
				r.multicast(l, k.v6, buildAnswer(nil, pa.ans, pa.extra, false), now)
			}
		}
		timer.Reset(wake.Sub(now))
		select {
		case <-ctx.Done():
			r.shutdown()
			return
		case p := <-r.packets:
			r.handle(p, time.Now(), found)
		case <-timer.C:
		}
	}
}

// shutdown says goodbye on every link, then stops the readers.
func (r *runner) shutdown() {
	if r.everAnnounced {
		// Goodbyes remove only records with our data, never those of a
		// responder that took our names.
		for _, l := range r.links {
			r.sendRecords(l, true, time.Now())
		}
	}
	close(r.done)
	if r.v4 != nil {
		r.v4.Close()
	}
	if r.v6 != nil {
		r.v6.Close()
	}
	r.wg.Wait()
}

// read feeds packets from one socket into r.packets until the socket is
// closed. Packets longer than maxPacketSize are dropped here.
func (r *runner) read(readFrom func([]byte) (packet, int, error)) {
	buf := make([]byte, maxPacketSize+1)
	for {
		p, n, err := readFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			r.log.Debug("reading mDNS packet", "error", err)
			select {
			case <-r.done:
				return
			case <-time.After(10 * time.Millisecond): // don't spin on a persistent error
			}
			continue
		}
		if n > maxPacketSize {
			r.log.Trace("dropping oversized mDNS packet", "from", p.src)
			continue
		}
		p.data = slices.Clone(buf[:n])
		select {
		case r.packets <- p:
		case <-r.done:
			return
		}
	}
}

func (r *runner) read4(buf []byte) (packet, int, error) {
	n, cm, src, err := r.v4.ReadFrom(buf)
	if err != nil || cm == nil {
		return packet{}, n, err
	}
	p := packet{ifindex: cm.IfIndex, src: udpAddr(src)}
	p.dst, _ = netip.AddrFromSlice(cm.Dst)
	p.dst = p.dst.Unmap()
	return p, n, nil
}

func (r *runner) read6(buf []byte) (packet, int, error) {
	n, cm, src, err := r.v6.ReadFrom(buf)
	if err != nil || cm == nil {
		return packet{}, n, err
	}
	p := packet{ifindex: cm.IfIndex, src: udpAddr(src), v6: true}
	p.dst, _ = netip.AddrFromSlice(cm.Dst)
	return p, n, nil
}

func udpAddr(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// scan re-reads the interfaces, joins the mDNS groups on new links, and
// restarts the announcement burst and the queries when the set of links or
// their addresses changed.
func (r *runner) scan(now time.Time) {
	r.nextScan = now.Add(rescanInterval)
	ifs, err := net.Interfaces()
	if err != nil {
		r.log.Warn("listing network interfaces", "error", err)
		return
	}
	present := map[int]bool{}
	links := map[int]*link{}
	var sig strings.Builder
	for _, ifi := range ifs {
		present[ifi.Index] = true
		if !r.wanted(ifi) {
			continue
		}
		l := &link{index: ifi.Index, name: ifi.Name, loopback: ifi.Flags&net.FlagLoopback != 0}
		l.addrs = linkAddrs(ifi)
		l.announce = announceable(l.addrs, r.cfg.Addrs)
		l.recs = ourRecords(r.cfg.Self, uint16(r.cfg.Port), l.announce)
		r.join(ifi, l)
		if !l.v4 && !l.v6 {
			continue
		}
		links[l.index] = l
		fmt.Fprintf(&sig, "%d/%s/%v/%t/%t;", l.index, l.name, l.announce, l.v4, l.v6)
	}
	// Memberships die with their interface; a reused index must join anew.
	for _, joined := range []map[int]bool{r.joined4, r.joined6} {
		for i := range joined {
			if !present[i] {
				delete(joined, i)
			}
		}
	}
	r.links = links
	if s := sig.String(); s != r.linkSig {
		r.linkSig = s
		names := make([]string, 0, len(links))
		for _, l := range links {
			names = append(names, l.name)
		}
		slices.Sort(names)
		r.log.Debug("mDNS links changed", "links", names)
		// A new link, or new addresses, may meet a responder claiming
		// our names (RFC 6762 §8): probe before announcing again.
		r.startProbing(now, rand.N(probeGap))
		r.queryGap = time.Second
		r.nextQuery = now.Add(firstQueryMin + rand.N(firstQueryMax-firstQueryMin))
	}
}

func (r *runner) wanted(ifi net.Interface) bool {
	const need = net.FlagUp | net.FlagRunning | net.FlagMulticast
	if ifi.Flags&need != need {
		return false
	}
	return len(r.cfg.Interfaces) == 0 || slices.Contains(r.cfg.Interfaces, ifi.Name)
}

// linkAddrs returns the unicast addresses of ifi in announcement order:
// IPv4, then IPv6 of wider scope, then IPv6 link-local.
func linkAddrs(ifi net.Interface) []netip.Addr {
	as, err := ifi.Addrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range as {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if ip = ip.Unmap(); ok && !ip.IsUnspecified() && !ip.IsMulticast() {
			out = append(out, ip)
		}
	}
	rank := func(a netip.Addr) int {
		switch {
		case a.Is4():
			return 0
		case !a.IsLinkLocalUnicast():
			return 1
		}
		return 2
	}
	slices.SortStableFunc(out, func(a, b netip.Addr) int { return rank(a) - rank(b) })
	return out
}

// announceable returns the addresses of a link, best first, that we
// announce: those in only, or all of them if only is empty; at most
// maxPeerAddrs.
func announceable(addrs, only []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if len(only) == 0 || slices.ContainsFunc(only, func(o netip.Addr) bool { return o.WithZone("") == a.WithZone("") }) {
			out = append(out, a)
		}
	}
	return out[:min(len(out), maxPeerAddrs)]
}

// join joins the mDNS group of each family on ifi where it has an address
// of that family to send from, and records the result in l.
func (r *runner) join(ifi net.Interface, l *link) {
	var has4, has6 bool
	for _, a := range l.addrs {
		has4 = has4 || a.Is4()
		has6 = has6 || a.Is6()
	}
	if r.v4 != nil && has4 && !r.joined4[ifi.Index] {
		err := r.v4.JoinGroup(&ifi, &net.UDPAddr{IP: group4.AsSlice()})
		r.joined4[ifi.Index] = err == nil || errors.Is(err, syscall.EADDRINUSE)
		if !r.joined4[ifi.Index] {
			r.log.Debug("joining IPv4 mDNS group", "link", ifi.Name, "error", err)
		}
	}
	if r.v6 != nil && has6 && !r.joined6[ifi.Index] {
		err := r.v6.JoinGroup(&ifi, &net.UDPAddr{IP: group6.AsSlice()})
		r.joined6[ifi.Index] = err == nil || errors.Is(err, syscall.EADDRINUSE)
		if !r.joined6[ifi.Index] {
			r.log.Debug("joining IPv6 mDNS group", "link", ifi.Name, "error", err)
		}
	}
	l.v4 = has4 && r.joined4[ifi.Index]
	l.v6 = has6 && r.joined6[ifi.Index]
}

// startProbing gives up our names until probing, starting after wait,
// claims them again.
func (r *runner) startProbing(now time.Time, wait time.Duration) {
	r.announced, r.nextAnnounce = false, time.Time{}
	clear(r.answerDue)
	r.probeStep, r.nextProbe = 0, now.Add(wait)
}

// probe sends the next probe on every link, or, once the last has gone
// unanswered for probeGap, takes our names and starts announcing.
func (r *runner) probe(now time.Time) {
	if r.probeStep == probeCount {
		r.log.Debug("mDNS probing done; announcing", "instance", instanceName(r.cfg.Self))
		r.announced, r.nextProbe = true, time.Time{}
		r.announceStep, r.nextAnnounce = 0, now
		return
	}
	for _, l := range r.links {
		if len(l.announce) == 0 {
			continue
		}
		b, err := buildProbe(l.recs).Pack()
		if err != nil {
			r.log.Error("packing mDNS probe", "error", err)
			return
		}
		r.send(l, false, b)
		r.send(l, true, b)
	}
	r.probeStep++
	r.nextProbe = now.Add(probeGap)
}

// conflict gives up our names after rr, from src, claimed one of them: we
// stop answering and announcing, and probe again, at once if we had
// announced (the claim may be stale, RFC 6762 §9), else after
// conflictRetry. Our instance name is our PeerID, so unlike other
// responders we cannot pick another name.
func (r *runner) conflict(now time.Time, rr dns.RR, src netip.AddrPort) {
	wait := conflictRetry
	if r.announced {
		wait = rand.N(probeGap)
	}
	if r.announced || r.probeStep > 0 {
		r.log.Warn("another mDNS responder claims our name; not announcing until it stops",
			"record", rr.String(), "from", src, "retry_in", wait)
	}
	r.startProbing(now, wait)
}

func (r *runner) announce(now time.Time) {
	r.everAnnounced = true
	for _, l := range r.links {
		r.sendRecords(l, false, now)
	}
	if r.announceStep < len(announceBurst) {
		r.nextAnnounce = now.Add(announceBurst[r.announceStep])
		r.announceStep++
	} else {
		r.nextAnnounce = now.Add(r.cfg.AnnounceInterval)
	}
}

func (r *runner) query(now time.Time) {
	b, err := buildQuery(r.cfg.Self).Pack()
	if err != nil {
		r.log.Error("packing mDNS query", "error", err)
		return
	}
	for _, l := range r.links {
		r.send(l, false, b)
		r.send(l, true, b)
	}
	r.nextQuery = now.Add(r.queryGap)
	r.queryGap = min(2*r.queryGap, r.cfg.QueryInterval)
}

// sendRecords multicasts all our records on l, on both address families;
// goodbye sends them with TTL 0.
func (r *runner) sendRecords(l *link, goodbye bool, now time.Time) {
	if len(l.announce) == 0 {
		// Receivers would take the packet's source for our address, and
		// nobody listens there.
		return
	}
	m := buildResponse(r.cfg.Self, uint16(r.cfg.Port), l.announce, goodbye)
	r.multicast(l, false, m, now)
	r.multicast(l, true, m, now)
}

// multicast sends response m to the group of one family on l.
func (r *runner) multicast(l *link, v6 bool, m *dns.Msg, now time.Time) {
	b, err := m.Pack()
	if err != nil {
		r.log.Error("packing mDNS response", "error", err)
		return
	}
	r.send(l, v6, b)
	r.lastSent[sendKey{l.index, v6}] = now
}

func (r *runner) send(l *link, v6 bool, b []byte) {
	var err error
	switch {
	case v6 && l.v6:
		dst := &net.UDPAddr{IP: group6.AsSlice(), Port: mdnsPort}
		_, err = r.v6.WriteTo(b, &ipv6.ControlMessage{IfIndex: l.index}, dst)
	case !v6 && l.v4:
		dst := &net.UDPAddr{IP: group4.AsSlice(), Port: mdnsPort}
		_, err = r.v4.WriteTo(b, &ipv4.ControlMessage{IfIndex: l.index}, dst)
	}
	if err != nil {
		r.log.Debug("sending mDNS packet", "link", l.name, "ipv6", v6, "error", err)
	}
}

// unicast sends m to dst on l, unless l has had maxUnicastPerSecond
// unicast answers in the last second.
func (r *runner) unicast(l *link, dst netip.AddrPort, m *dns.Msg, now time.Time) {
	w := r.unicastSent[l.index]
	if now.Sub(w.start) >= time.Second {
		w = unicastWindow{start: now}
	}
	if w.n >= maxUnicastPerSecond {
		r.log.Trace("too many unicast mDNS answers; dropping one", "link", l.name, "to", dst)
		return
	}
	w.n++
	r.unicastSent[l.index] = w
	b, err := m.Pack()
	if err != nil {
		r.log.Error("packing mDNS answer", "error", err)
		return
	}
	to := net.UDPAddrFromAddrPort(dst)
	if dst.Addr().Is4() {
		_, err = r.v4.WriteTo(b, &ipv4.ControlMessage{IfIndex: l.index}, to)
	} else {
		if dst.Addr().IsLinkLocalUnicast() {
			to.Zone = l.name
		}
		_, err = r.v6.WriteTo(b, &ipv6.ControlMessage{IfIndex: l.index}, to)
	}
	if err != nil {
		r.log.Debug("sending unicast mDNS answer", "link", l.name, "to", dst, "error", err)
	}
}

// handle acts on one received packet: answers a query for our records,
// or turns announcements into hints; either may reveal another responder
// claiming our names.
func (r *runner) handle(p packet, now time.Time, found func(Hint)) {
	l := r.links[p.ifindex]
	if l == nil {
		return // not on a link of ours
	}
	m, err := decodePacket(p.data)
	if err != nil {
		r.log.Debug("dropping mDNS packet", "from", p.src, "link", l.name, "error", err)
		return
	}
	if !m.Response {
		r.answerQuery(l, p, m, now)
		return
	}
	if p.src.Port() != mdnsPort {
		return // RFC 6762 §6: responses come from port 5353
	}
	if rr := conflicting(m, r.cfg.Self, r.ours()); rr != nil {
		r.conflict(now, rr, p.src)
	}
	for _, a := range announcements(m) {
		a.Addrs = usableAddrs(a.Addrs, l, p.src.Addr())
		hints, drop := r.tracker.observe(a, now)
		switch drop {
		case "", dropSelf:
		case dropGoodbye:
			r.log.Debug("peer said goodbye", "peer", a.Peer, "from", p.src)
		case dropFiltered:
			r.log.Debug("ignoring announcement", "peer", a.Peer, "from", p.src, "reason", drop)
		default:
			r.log.Trace("ignoring announcement", "peer", a.Peer, "from", p.src, "reason", drop)
		}
		for _, h := range hints {
			found(h)
		}
	}
}

// answerQuery answers query m, received on l, if it asks for our records
// and we own them. A legacy query (RFC 6762 §6.7: from a port other than
// 5353, a plain DNS client) gets a unicast answer carrying its id and
// question. A query sent to us by unicast, or asking for a unicast answer
// (the QU bit, §5.4) for records we multicast on the link lately, gets a
// unicast answer to its source. Any other gets a multicast answer after a
// short delay, shared with other queries.
func (r *runner) answerQuery(l *link, p packet, m *dns.Msg, now time.Time) {
	if !r.announced {
		if !r.nextProbe.IsZero() && r.probeStep > 0 && !ownProbe(m, r.ours()) && probeWins(m, l.recs) {
			r.log.Debug("another host probes for our name with other records; deferring", "from", p.src)
			r.probeStep, r.nextProbe = 0, now.Add(probeDefer)
		}
		return
	}
	ans, extra := answer(m, l.recs)
	if len(ans) == 0 {
		return
	}
	k := sendKey{l.index, p.v6}
	switch answerRoute(p, m, r.lastSent[k], now) {
	case routeLegacy:
		r.unicast(l, p.src, buildAnswer(m, ans, extra, true), now)
	case routeUnicast:
		r.unicast(l, p.src, buildAnswer(m, ans, extra, false), now)
	default:
		r.scheduleAnswer(k, ans, extra, now)
	}
}

// How a query is answered.
const (
	routeMulticast = iota // to the group, after a delay
	routeUnicast          // to the querier, as an mDNS response
	routeLegacy           // to the querier, with its id and question
)

// answerRoute decides how to answer query m, received in p, given when we
// last multicast on its link: a query from a port other than 5353 is a
// legacy one (RFC 6762 §6.7); one sent to us by unicast gets a unicast
// answer (§6); one asking for a unicast answer (the QU bit) gets one if we
// multicast our records there within a quarter of their TTL, else a
// multicast answer, so that caches on the link are refreshed (§5.4).
func answerRoute(p packet, m *dns.Msg, lastSent, now time.Time) int {
	qu := slices.ContainsFunc(m.Question, func(q dns.Question) bool { return q.Qclass&unicastResp != 0 })
	recent := !lastSent.IsZero() && now.Sub(lastSent) < ttlHost*time.Second/4
	switch {
	case p.src.Port() != mdnsPort:
		return routeLegacy
	case p.dst != group4 && p.dst != group6, qu && recent:
		return routeUnicast
	}
	return routeMulticast
}

// ownProbe reports whether every record probe m proposes is one of ours:
// our own probe, heard back on another of our links (a host with two
// interfaces on one segment), which must not defer us.
func ownProbe(m *dns.Msg, ours []dns.RR) bool {
	for _, rr := range m.Ns {
		if !slices.ContainsFunc(ours, func(o dns.RR) bool { return sameRecord(rr, o) }) {
			return false
		}
	}
	return len(m.Ns) > 0
}

// ours returns every record we send, on any link.
func (r *runner) ours() []dns.RR {
	var out []dns.RR
	for _, l := range r.links {
		out = append(out, l.recs.unique()...)
	}
	return out
}

// scheduleAnswer arranges for ans and extra to be multicast on k's link and
// family: at once if they are all unique records, else after a random
// 20–120 ms, so that responders sharing the PTR do not all answer at once
// (RFC 6762 §6); and at least minAnswerInterval after our last multicast
// there. A pending answer takes in the records later queries ask for.
func (r *runner) scheduleAnswer(k sendKey, ans, extra []dns.RR, now time.Time) {
	pa := r.answerDue[k]
	if pa == nil {
		due := now
		if slices.ContainsFunc(ans, func(rr dns.RR) bool { return !isUnique(rr) }) {
			due = now.Add(answerDelayMin + rand.N(answerDelayMax-answerDelayMin))
		}
		if next := r.lastSent[k].Add(minAnswerInterval); next.After(due) {
			due = next
		}
		pa = &pendingAnswer{due: due}
		r.answerDue[k] = pa
	}
	for _, rr := range ans {
		if !slices.Contains(pa.ans, rr) {
			pa.ans = append(pa.ans, rr)
		}
	}
	pa.extra = slices.DeleteFunc(pa.extra, func(rr dns.RR) bool { return slices.Contains(pa.ans, rr) })
	for _, rr := range extra {
		if !slices.Contains(pa.ans, rr) && !slices.Contains(pa.extra, rr) {
			pa.extra = append(pa.extra, rr)
		}
	}
}

// usableAddrs adapts the announced addresses to the link they were heard
// on: IPv6 link-local ones get the link as zone, loopback ones are dropped
// unless heard on loopback, and if none is left the packet's source stands
// in.
func usableAddrs(addrs []netip.Addr, l *link, src netip.Addr) []netip.Addr {
	fix := func(a netip.Addr) (netip.Addr, bool) {
		if a.IsLoopback() && !l.loopback {
			return a, false
		}
		if a.Is6() && a.IsLinkLocalUnicast() {
			a = a.WithZone(l.name)
		}
		return a, a.IsValid() && !a.IsUnspecified() && !a.IsMulticast()
	}
	var out []netip.Addr
	for _, a := range addrs {
		if a, ok := fix(a); ok {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		if a, ok := fix(src); ok {
			out = append(out, a)
		}
	}
	return out
}
