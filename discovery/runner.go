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
	ttl     uint32

	links            map[int]*link // by interface index
	joined4, joined6 map[int]bool
	linkSig          string
	lastSent         map[sendKey]time.Time
	answerDue        map[sendKey]time.Time // queries waiting for an answer

	nextScan, nextAnnounce, nextQuery time.Time
	announceStep                      int
	queryGap                          time.Duration

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
	v4, v6   bool         // joined the group of that family
}

type sendKey struct {
	index int
	v6    bool
}

type packet struct {
	data     []byte
	ifindex  int
	src, dst netip.Addr
	v6       bool
}

func (m *MDNS) open() (*runner, error) {
	r := &runner{
		cfg:       &m.cfg,
		log:       m.log,
		tracker:   newTracker(m.cfg.Self, m.cfg.Filter, m.cfg.MaxTracked),
		ttl:       uint32(2 * m.cfg.AnnounceInterval / time.Second),
		links:     map[int]*link{},
		joined4:   map[int]bool{},
		joined6:   map[int]bool{},
		lastSent:  map[sendKey]time.Time{},
		answerDue: map[sendKey]time.Time{},
		packets:   make(chan packet, 16),
		done:      make(chan struct{}),
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
		if !now.Before(r.nextAnnounce) {
			r.announce(now)
		}
		if !now.Before(r.nextQuery) {
			r.query(now)
		}
		wake := r.nextScan
		for _, t := range []time.Time{r.nextAnnounce, r.nextQuery} {
			if t.Before(wake) {
				wake = t
			}
		}
		for k, due := range r.answerDue {
			if now.Before(due) {
				if due.Before(wake) {
					wake = due
				}
				continue
			}
			delete(r.answerDue, k)
			if l := r.links[k.index]; l != nil {
				r.sendRecords(l, r.ttl, !k.v6, k.v6, now)
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
	for _, l := range r.links {
		r.sendRecords(l, 0, true, true, time.Now())
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

func udpAddr(a net.Addr) netip.Addr {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
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
		r.announceStep, r.nextAnnounce = 0, now
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

func (r *runner) announce(now time.Time) {
	for _, l := range r.links {
		r.sendRecords(l, r.ttl, true, true, now)
	}
	if r.announceStep < len(announceBurst) {
		r.nextAnnounce = now.Add(announceBurst[r.announceStep])
		r.announceStep++
	} else {
		r.nextAnnounce = now.Add(r.cfg.AnnounceInterval)
	}
}

func (r *runner) query(now time.Time) {
	b, err := buildQuery().Pack()
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

// sendRecords multicasts our records with the given ttl on l, on the chosen
// address families.
func (r *runner) sendRecords(l *link, ttl uint32, v4, v6 bool, now time.Time) {
	if len(l.announce) == 0 {
		// Receivers would take the packet's source for our address, and
		// nobody listens there.
		return
	}
	b, err := buildResponse(r.cfg.Self, uint16(r.cfg.Port), l.announce, ttl).Pack()
	if err != nil {
		r.log.Error("packing mDNS response", "error", err)
		return
	}
	if v4 {
		r.send(l, false, b)
		r.lastSent[sendKey{l.index, false}] = now
	}
	if v6 {
		r.send(l, true, b)
		r.lastSent[sendKey{l.index, true}] = now
	}
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

// handle acts on one received packet: answers a query for our records, or
// turns announcements into hints.
func (r *runner) handle(p packet, now time.Time, found func(Hint)) {
	l := r.links[p.ifindex]
	if l == nil || (p.dst != group4 && p.dst != group6) {
		// Not on a link of ours, or unicast to port 5353: we never ask
		// for unicast answers, so it is not for us.
		return
	}
	m, err := decodePacket(p.data)
	if err != nil {
		r.log.Debug("dropping mDNS packet", "from", p.src, "link", l.name, "error", err)
		return
	}
	if !m.Response {
		if asksFor(m, r.cfg.Self, r.ttl) {
			r.scheduleAnswer(sendKey{l.index, p.v6}, now)
		}
		return
	}
	for _, a := range announcements(m) {
		a.Addrs = usableAddrs(a.Addrs, l, p.src)
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

// scheduleAnswer arranges for our records to be multicast on k's link and
// family after a short random delay, and at least minAnswerInterval after
// they were last sent there. A pending answer covers later queries too.
func (r *runner) scheduleAnswer(k sendKey, now time.Time) {
	if _, ok := r.answerDue[k]; ok {
		return
	}
	due := now.Add(answerDelayMin + rand.N(answerDelayMax-answerDelayMin))
	if next := r.lastSent[k].Add(minAnswerInterval); next.After(due) {
		due = next
	}
	r.answerDue[k] = due
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
