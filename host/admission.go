package host

import (
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// firstMessageLen is how many bytes a dialer sends before it waits for the
// responder: the preamble (protocol §2, 5 bytes) and message 1 with its
// length (§3.3, 2 + 32). A pending handshake that has received them is
// past the stage where an anonymous socket can stall for free.
const firstMessageLen = 5 + 2 + 32

// refusalLogInterval spaces the summary lines of refused sockets: an
// attacker opening sockets must not be able to grow the log one line each.
const refusalLogInterval = 10 * time.Second

// admission keeps the inbound handshakes in progress within
// Config.MaxHandshakes in total and MaxHandshakesPerSource per source, by
// evicting stalled ones for newer sockets (see Config.MaxHandshakes).
type admission struct {
	max, perSource int
	log            hclog.Logger

	mu       sync.Mutex
	bySource map[netip.Prefix][]*pendingHandshake // arrival order
	total    int
	refusals map[string]int // since the last summary line
	lastLog  time.Time
}

// pendingHandshake is one inbound socket between accept and the end of its
// handshake.
type pendingHandshake struct {
	raw  *countingConn
	src  netip.Prefix
	gone bool // evicted or finished; guarded by admission.mu
}

// countingConn counts the bytes read from a socket, so that admission can
// tell a dialer that spoke from one that stalls.
type countingConn struct {
	net.Conn
	read atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (a *admission) init(cfg Config, log hclog.Logger) {
	a.max, a.perSource, a.log = cfg.MaxHandshakes, cfg.MaxHandshakesPerSource, log
	a.bySource = make(map[netip.Prefix][]*pendingHandshake)
	a.refusals = make(map[string]int)
}

// source is the key that per-source limits count by: the IPv4 address, or
// the IPv6 /64 (one host often holds a whole /64).
func source(addr net.Addr) netip.Prefix {
	var ip netip.Addr
	if ta, ok := addr.(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr().Unmap()
	}
	if ip.Is4() || !ip.IsValid() {
		return netip.PrefixFrom(ip, ip.BitLen())
	}
	p, _ := ip.Prefix(64)
	return p
}

// add admits raw as a pending handshake, evicting a stalled one if a limit
// is reached. It returns nil, having closed raw, if nothing could be
// evicted.
func (a *admission) add(raw net.Conn, obs Observer) *pendingHandshake {
	src := source(raw.RemoteAddr())
	a.mu.Lock()
	var victims []*pendingHandshake
	switch {
	case len(a.bySource[src]) >= a.perSource:
		victims = a.bySource[src]
	case a.total >= a.max:
		for _, l := range a.bySource {
			if len(l) > len(victims) {
				victims = l
			}
		}
	}
	var evict *pendingHandshake
	if victims != nil {
		for _, h := range victims { // oldest first
			if h.raw.read.Load() < firstMessageLen {
				evict = h
				break
			}
		}
		if evict == nil {
			a.refusedLocked(RefusedOverLimit, obs)
			a.mu.Unlock()
			raw.Close()
			return nil
		}
		a.removeLocked(evict)
		a.refusedLocked(RefusedEvicted, obs)
	}
	h := &pendingHandshake{raw: &countingConn{Conn: raw}, src: src}
	a.bySource[src] = append(a.bySource[src], h)
	a.total++
	a.mu.Unlock()
	if evict != nil {
		evict.raw.Close() // its handshake fails, and its goroutine calls done
	}
	return h
}

// done removes h once its handshake has ended, unless it was evicted.
func (a *admission) done(h *pendingHandshake) {
	a.mu.Lock()
	a.removeLocked(h)
	a.mu.Unlock()
}

func (a *admission) removeLocked(h *pendingHandshake) {
	if h.gone {
		return
	}
	h.gone = true
	a.total--
	l := a.bySource[h.src]
	for i, o := range l {
		if o == h {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(a.bySource, h.src)
	} else {
		a.bySource[h.src] = l
	}
}

// refused counts a refusal for metrics and the summary log line.
func (a *admission) refused(reason string, obs Observer) {
	a.mu.Lock()
	a.refusedLocked(reason, obs)
	a.mu.Unlock()
}

func (a *admission) refusedLocked(reason string, obs Observer) {
	obs.HandshakeRefused(reason)
	a.refusals[reason]++
	a.logLocked(time.Now())
}

// flushLog writes the summary line of refusals that have waited long
// enough; the liveness loop calls it, so that the last ones of a burst
// are reported too.
func (a *admission) flushLog() {
	a.mu.Lock()
	a.logLocked(time.Now())
	a.mu.Unlock()
}

func (a *admission) logLocked(now time.Time) {
	if len(a.refusals) == 0 || now.Sub(a.lastLog) < refusalLogInterval {
		return
	}
	reasons := make([]string, 0, len(a.refusals))
	for r := range a.refusals {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	args := []any{"pending", a.total}
	for _, r := range reasons {
		args = append(args, r, a.refusals[r])
	}
	if a.lastLog.IsZero() {
		a.log.Warn("refusing inbound sockets (counts by reason follow); further refusals are summed up every "+refusalLogInterval.String(), args...)
	} else {
		a.log.Warn("inbound sockets refused since the last summary", args...)
	}
	clear(a.refusals)
	a.lastLog = now
}
