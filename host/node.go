package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// File names inside a node's data dir.
const (
	TrustFile = "trust.json"
)

// Node is a running PeerNet node: an identity, a trust list, a listener and
// the connections to its peers. All methods are safe for concurrent use.
type Node struct {
	cfg   Config
	log   hclog.Logger
	lock  *trust.DirLock
	id    *trust.Identity
	trust *trust.List
	local *wire.Local
	ln    net.Listener

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the node started

	handlersMu sync.Mutex // serialises Expose and Revoke
	handlers   atomic.Pointer[map[string]*exposed]

	mu     sync.RWMutex
	peers  map[trust.PeerID]*peerState
	closed bool

	state     atomic.Int32 // serving, holding or draining
	admission admission    // inbound handshakes in progress
	events    events
	epoch     time.Time // the node's clock for timestamps kept in atomics; see now

	stopTrustWatch func()
	closeStarted   atomic.Bool
	closeDone      chan struct{} // closed when Close has finished
}

// peerState is what the node knows of one peer, guarded by Node.mu.
type peerState struct {
	conn   *conn     // the connection in use; nil when down
	others []*conn   // connections being retired after a tie-break
	addr   string    // where to redial; empty if unknown
	via    string    // how addr was learned: "connect", "config", "mdns", ...
	redial *redialer // the running redial loop; nil if none
	budget *budget   // shared by all of the peer's connections

	// suspended stops redialling after Disconnect, until the next
	// Connect or address hint.
	suspended bool

	// dialing serialises our dials to the peer (buffered 1), so that two
	// connections we dial are never in handshake at once: the later
	// one is then the fresher on both sides (see prefer).
	dialing  chan struct{}
	dialAddr string // the address of the dial holding the slot; "" if none
}

// redialer is one peer's redial loop as the peer's state knows it, so that
// a new address can reach the loop. Guarded by Node.mu.
type redialer struct {
	wake   chan struct{}      // buffered 1: a new address to try at once
	cancel context.CancelFunc // cancels the dial in progress; nil between dials
	addr   string             // the address of the dial in progress
}

// retry makes the loop try addr, the peer's new address, at once: it stops
// a dial in progress to another address, and wakes the loop if it waits.
func (r *redialer) retry(addr string) {
	if r.cancel != nil && r.addr != addr {
		r.cancel()
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Start opens the data dir (creating the identity on first start), listens
// and returns a running node. The caller must Close it.
func Start(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if cfg.Name != "" {
		log = log.Named(cfg.Name)
	}
	n := &Node{cfg: cfg, log: log, peers: make(map[trust.PeerID]*peerState), epoch: time.Now(), closeDone: make(chan struct{})}
	n.admission.init(cfg, n.log)
	empty := map[string]*exposed{}
	n.handlers.Store(&empty)
	if err := n.open(); err != nil {
		n.release()
		return nil, err
	}
	if cfg.HoldRequests {
		n.state.Store(holding)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.stopTrustWatch = n.trust.OnRemove(n.untrusted)
	for _, p := range cfg.Peers {
		if err := n.declare(p); err != nil {
			n.cancel()
			n.stopTrustWatch()
			n.release()
			return nil, err
		}
	}
	if err := n.startDiscovery(); err != nil {
		n.cancel()
		n.stopTrustWatch()
		n.release()
		return nil, err
	}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.acceptLoop()
	}()
	go func() {
		defer n.wg.Done()
		n.livenessLoop()
	}()
	n.log.Info("node started", "id", n.id.PeerID(), "addr", n.ln.Addr())
	return n, nil
}

func (n *Node) open() error {
	var err error
	// LockDir creates the data dir if need be and checks that it is ours.
	if n.lock, err = trust.LockDir(n.cfg.DataDir); err != nil {
		return err
	}
	if n.id, _, err = trust.LoadOrCreateIdentity(n.cfg.DataDir); err != nil {
		return err
	}
	if n.trust, err = trust.OpenList(filepath.Join(n.cfg.DataDir, TrustFile)); err != nil {
		return err
	}
	if n.local, err = wire.NewLocal(n.id, wire.Config{MaxMessageSize: n.cfg.MaxMessageSize, Suite: n.cfg.CipherSuite}); err != nil {
		return err
	}
	if n.ln, err = net.Listen("tcp", n.cfg.ListenAddr); err != nil {
		return fmt.Errorf("host: listening: %w", err)
	}
	return nil
}

func (n *Node) release() {
	if n.ln != nil {
		n.ln.Close()
	}
	if n.lock != nil {
		n.lock.Close()
	}
}

// Close stops the node: it stops listening, says goaway to every peer, fails
// calls in flight with ErrClosed at once, cancels running handlers' contexts
// and waits for every goroutine it started, handlers included. Safe to call
// many times and from a Subscribe callback; a later call waits for the
// first to finish, unless it comes from a callback, which the first waits
// for.
func (n *Node) Close() error {
	if n.closeStarted.Swap(true) {
		if !n.events.inCallback() {
			<-n.closeDone
		}
		return nil
	}
	defer close(n.closeDone)
	n.stopTrustWatch()
	n.cancel()
	n.ln.Close()
	n.mu.Lock()
	n.closed = true
	var conns []*conn
	for _, ps := range n.peers {
		if ps.conn != nil {
			conns = append(conns, ps.conn)
		}
		conns = append(conns, ps.others...)
	}
	n.mu.Unlock()
	for _, c := range conns {
		c.shutdown(ErrClosed, true)
	}
	n.wg.Wait()
	n.events.close()
	n.release()
	n.log.Info("node stopped")
	return nil
}

// The node's request states.
const (
	serving  = iota // inbound requests run
	holding         // refused "unavailable" until Ready
	draining        // refused "unavailable" while Shutdown waits
)

// Ready starts serving inbound requests on a node started with
// HoldRequests. It is a no-op otherwise, and after Shutdown has begun.
func (n *Node) Ready() { n.state.CompareAndSwap(holding, serving) }

// declare trusts a peer from the Config and records its address.
func (n *Node) declare(p Peer) error {
	if err := n.Trust(p.ID, p.Label); err != nil {
		return fmt.Errorf("host: trusting declared peer %q: %w", p.Label, err)
	}
	if p.Addr == "" {
		return nil
	}
	return n.SetAddr(p.ID, p.Addr, "config")
}

// Shutdown stops the node gracefully: new inbound requests are answered
// "unavailable" while those already running get until ctx is done to
// finish; then it closes the node as Close does.
func (n *Node) Shutdown(ctx context.Context) error {
	n.state.Store(draining)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for n.Inflight() > 0 {
		select {
		case <-ctx.Done():
			n.Close()
			return ctx.Err()
		case <-t.C:
		}
	}
	return n.Close()
}

// Inflight counts the inbound calls and sends running on this node.
func (n *Node) Inflight() int {
	total := 0
	for _, c := range n.conns() {
		c.imu.Lock()
		total += c.running
		c.imu.Unlock()
	}
	return total
}

// now is the time since the node started, on the monotonic clock: cheap to
// take and to keep in an atomic.
func (n *Node) now() time.Duration { return time.Since(n.epoch) }

func (n *Node) conns() []*conn {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var out []*conn
	for _, ps := range n.peers {
		if ps.conn != nil {
			out = append(out, ps.conn)
		}
		out = append(out, ps.others...)
	}
	return out
}

// Identity returns this node's PeerID, its address for other peers.
func (n *Node) Identity() trust.PeerID { return n.id.PeerID() }

// Name returns the node's configured name.
func (n *Node) Name() string { return n.cfg.Name }

// Port returns the TCP port the node listens on.
func (n *Node) Port() int { return n.ln.Addr().(*net.TCPAddr).Port }

// Addr returns the address the node listens on.
func (n *Node) Addr() net.Addr { return n.ln.Addr() }

// Trust adds peer to the trust list with a label for humans, persisting it
// before it returns. Trusting a trusted peer updates a non-empty label.
func (n *Node) Trust(peer trust.PeerID, label string) error {
	if peer == n.Identity() {
		return errors.New("host: a node cannot trust itself")
	}
	_, err := n.trust.Add(peer, label)
	return err
}

// Untrust removes peer from the trust list. Its live connections are closed
// at once and its calls in flight fail; it is no longer redialled. Removing
// an unknown peer is a no-op.
func (n *Node) Untrust(peer trust.PeerID) error {
	_, err := n.trust.Remove(peer)
	return err
}

// Trusted reports whether peer is on the trust list.
func (n *Node) Trusted(peer trust.PeerID) bool { return n.trust.Contains(peer) }

// untrusted runs after peer's removal from the trust list is persisted.
func (n *Node) untrusted(peer trust.PeerID) {
	reason := fmt.Errorf("%w: %s", ErrNotTrusted, peer)
	n.mu.Lock()
	ps := n.peers[peer]
	delete(n.peers, peer)
	if ps != nil {
		// The peer is down from now on, even if trusted again and
		// reconnected before these connections have finished closing.
		n.downLocked(ps.conn, reason)
	}
	n.mu.Unlock()
	if ps == nil {
		return
	}
	for _, c := range append(ps.others, ps.conn) {
		if c != nil {
			c.shutdownWith(reason, wire.GoawayUntrusted, "")
		}
	}
}

// PeerInfo describes one trusted peer; a plugin's Host.Peers lists the same.
type PeerInfo = rpc.PeerInfo

// Peers lists every trusted peer with its label, whether it is connected and
// its last known address. The caller owns the slice.
func (n *Node) Peers() []PeerInfo {
	entries := n.trust.List()
	out := make([]PeerInfo, 0, len(entries))
	n.mu.RLock()
	defer n.mu.RUnlock()
	for _, e := range entries {
		pi := PeerInfo{ID: e.ID, Label: e.Label, AddedAt: e.AddedAt}
		if ps := n.peers[e.ID]; ps != nil {
			pi.Addr, pi.Source = ps.addr, ps.via
			if ps.conn != nil {
				pi.Connected = true
				pi.Addr = ps.conn.remoteAddr().String()
				pi.Suite, pi.PeerMaxMessageSize = ps.conn.sc.Suite(), ps.conn.sc.PeerMaxMessageSize()
			}
		}
		out = append(out, pi)
	}
	return out
}

// Connected reports whether a live, authenticated connection to peer exists.
func (n *Node) Connected(peer trust.PeerID) bool { return n.connFor(peer) != nil }

func (n *Node) connFor(peer trust.PeerID) *conn {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if ps := n.peers[peer]; ps != nil {
		return ps.conn
	}
	return nil
}

// SetAddr records addr as where peer can be reached, so the node dials it
// whenever it is not connected (with backoff). via says how the address was
// learned, for events and logs ("config", "mdns", ...). The peer must be
// trusted.
func (n *Node) SetAddr(peer trust.PeerID, addr, via string) error {
	if !n.trust.Contains(peer) {
		return fmt.Errorf("%w: %s", ErrNotTrusted, peer)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	n.setAddrLocked(peer, n.peerLocked(peer), addr, via)
	return nil
}

// setAddrLocked records addr as where peer can be reached. If the peer is
// not connected, it is dialled: at once by a new redial loop, or by the
// running one, which a changed address wakes (see redial). n.mu held.
func (n *Node) setAddrLocked(peer trust.PeerID, ps *peerState, addr, via string) {
	changed := ps.addr != addr || ps.suspended
	ps.addr, ps.via, ps.suspended = addr, via, false
	switch {
	case ps.conn != nil:
	case ps.redial == nil:
		n.redialLocked(peer, ps, 0)
	case changed:
		ps.redial.retry(addr)
	}
}

func (n *Node) peerLocked(peer trust.PeerID) *peerState {
	ps := n.peers[peer]
	if ps == nil {
		ps = &peerState{budget: newBudget(n.cfg.MaxPeerMemory, n.cfg.MaxInflightPerPeer), dialing: make(chan struct{}, 1)}
		n.peers[peer] = ps
	}
	return ps
}

// Connect dials peer at addr (host:port) and returns once the peer is
// authenticated and has accepted us, or with the reason it failed:
// ErrBadAddr (addr does not parse; nothing is dialled), ErrNotTrusted (not
// on our trust list), ErrWrongPeer (addr answered with another key),
// ErrNotTrustedByPeer, a dial error, or ctx's error. On success the address
// is remembered for redialling, and a redial stopped by Disconnect resumes.
//
// Connecting to a connected peer returns nil at once if addr is the
// address remembered for it, and otherwise ErrAlreadyConnected, keeping the
// working connection and its address: Disconnect first to move the peer.
func (n *Node) Connect(ctx context.Context, peer trust.PeerID, addr string) error {
	if err := checkAddr(addr); err != nil {
		return err
	}
	if !n.trust.Contains(peer) {
		return fmt.Errorf("%w: %s", ErrNotTrusted, peer)
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	ps := n.peerLocked(peer)
	if err := n.alreadyLocked(ps, addr); err != nil {
		if err == errSameAddr {
			ps.suspended = false
			err = nil
		}
		n.mu.Unlock()
		return err
	}
	n.mu.Unlock()
	if err := n.dial(ctx, peer, addr, ps); err != nil {
		if err == errSameAddr {
			return nil
		}
		return err
	}
	n.mu.Lock()
	if !n.closed && n.peers[peer] == ps {
		ps.addr, ps.via, ps.suspended = addr, "connect", false
	}
	n.mu.Unlock()
	return nil
}

// errSameAddr: the peer is connected already, at the address asked for.
var errSameAddr = errors.New("host: already connected at that address")

// alreadyLocked says whether a Connect to addr has nothing to do
// (errSameAddr) or must not change a working connection
// (ErrAlreadyConnected). n.mu held.
func (n *Node) alreadyLocked(ps *peerState, addr string) error {
	if ps.conn == nil {
		return nil
	}
	if ps.addr == "" || ps.addr == addr || ps.conn.remoteAddr().String() == addr {
		// Nothing to change: no redial address to replace (the peer
		// dialled us; addr, unverified, is not recorded), or the same.
		return errSameAddr
	}
	return fmt.Errorf("%w at %s (redial address %q); disconnect first to use %s", ErrAlreadyConnected, ps.conn.remoteAddr(), ps.addr, addr)
}

// checkAddr checks that addr is host:port with a numeric port.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w %q: %v", ErrBadAddr, addr, err)
	}
	if host == "" {
		return fmt.Errorf("%w %q: no host", ErrBadAddr, addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%w %q: port must be 1-65535", ErrBadAddr, addr)
	}
	return nil
}

// resume ends a Disconnect's stop on redialling peer.
func (n *Node) resume(peer trust.PeerID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ps := n.peers[peer]; ps != nil && ps.suspended {
		ps.suspended = false
		if ps.conn == nil && ps.addr != "" && !n.closed {
			n.redialLocked(peer, ps, 0)
		}
	}
}

// Disconnect closes the connections to peer without untrusting it, failing
// its calls in flight with an error matching ErrConnLost, and stops
// redialling it until the next Connect, address hint (SetAddr, discovery)
// or restart. The peer may still dial us. It returns ErrNotConnected if
// there was no connection (redialling stops all the same), ErrNotTrusted
// for a peer not on the trust list.
func (n *Node) Disconnect(peer trust.PeerID) error {
	if !n.trust.Contains(peer) {
		return fmt.Errorf("%w: %s", ErrNotTrusted, peer)
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	ps := n.peers[peer]
	if ps == nil {
		n.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNotConnected, peer.Short())
	}
	ps.suspended = true
	if r := ps.redial; r != nil && r.cancel != nil {
		r.cancel()
	}
	conns := append([]*conn{ps.conn}, ps.others...)
	n.mu.Unlock()
	if conns[0] == nil && len(conns) == 1 {
		return fmt.Errorf("%w: %s", ErrNotConnected, peer.Short())
	}
	for _, c := range conns {
		if c != nil {
			c.shutdownWith(errDisconnected, wire.GoawayNormal, "disconnected by the peer's operator")
		}
	}
	return nil
}

var errDisconnected = &connLostError{errors.New("disconnected by this node (Disconnect)")}

// takeDialSlot waits for ps's dialing slot and reports whether it took it.
// A dial to another address than the one in progress goes ahead without
// it (false, ctx not done): the one in progress may hang at an address the
// peer has left, and the fresher of two that both succeed is still told
// apart by the acceptor in all but a race of the two handshakes.
func (n *Node) takeDialSlot(ctx context.Context, ps *peerState, addr string) bool {
	for {
		select {
		case ps.dialing <- struct{}{}:
			n.mu.Lock()
			ps.dialAddr = addr
			n.mu.Unlock()
			return true
		default:
		}
		n.mu.RLock()
		other := ps.dialAddr
		n.mu.RUnlock()
		if other != "" && other != addr {
			return false
		}
		select {
		case ps.dialing <- struct{}{}:
			n.mu.Lock()
			ps.dialAddr = addr
			n.mu.Unlock()
			return true
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
			// Look again: the dial in progress may have changed address.
		}
	}
}

// dial connects to peer at addr and registers the connection. ps is the
// peer's state when the dial was decided; its dialing slot is held for the
// whole dial. A Connect dial (connect true) that finds the peer connected
// once it holds the slot reports errSameAddr or ErrAlreadyConnected.
func (n *Node) dial(ctx context.Context, peer trust.PeerID, addr string, ps *peerState) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.HandshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(n.ctx, cancel) // Close aborts dials in progress
	defer stop()
	if held := n.takeDialSlot(ctx, ps, addr); held {
		defer func() {
			n.mu.Lock()
			ps.dialAddr = ""
			n.mu.Unlock()
			<-ps.dialing
		}()
	} else if ctx.Err() != nil {
		return fmt.Errorf("host: dialing %s at %s: %w", peer.Short(), addr, ctx.Err())
	}
	n.mu.RLock()
	err := n.alreadyLocked(ps, addr)
	n.mu.RUnlock()
	if err != nil {
		return err // connected while we waited for the slot
	}
	started := n.now()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("host: dialing %s at %s: %w", peer.Short(), addr, err)
	}
	sc, err := wire.Client(ctx, raw, n.local, peer)
	n.cfg.Observer.Handshake(false, err)
	if err != nil {
		return fmt.Errorf("host: handshake with %s at %s: %w", peer.Short(), addr, err)
	}
	return n.register(sc, true, started)
}

func (n *Node) acceptLoop() {
	for {
		raw, err := n.ln.Accept()
		if err != nil {
			if n.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			n.log.Error("accept failed; no longer accepting connections", "error", err)
			return
		}
		started := n.now()
		h := n.admission.add(raw, n.cfg.Observer)
		if h == nil {
			continue // refused; admission closed it and counted it
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer n.admission.done(h)
			n.accept(h, started)
		}()
	}
}

func (n *Node) accept(h *pendingHandshake, started time.Duration) {
	raw := h.raw
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.HandshakeTimeout)
	defer cancel()
	sc, err := wire.Server(ctx, raw, n.local, func(p trust.PeerID) wire.Verdict {
		if !n.trust.Contains(p) {
			return wire.RefuseUntrusted
		}
		if n.connCount(p) >= n.cfg.MaxConnsPerPeer {
			n.admission.refused(RefusedBusy, n.cfg.Observer)
			return wire.RefuseBusy
		}
		return wire.Accept
	})
	n.cfg.Observer.Handshake(true, err)
	if err != nil {
		// A PeerNet peer of another protocol version is worth an
		// operator's attention; scanners, untrusted keys and timeouts are
		// not, at the default level.
		if errors.Is(err, wire.ErrVersion) {
			n.log.Warn("inbound handshake failed: protocol version mismatch", "remote", raw.RemoteAddr(), "error", err)
		} else {
			n.log.Debug("inbound handshake failed", "remote", raw.RemoteAddr(), "error", err)
		}
		return
	}
	if err := n.register(sc, false, started); err != nil {
		n.log.Debug("inbound connection dropped", "peer", sc.RemotePeer().Short(), "error", err)
	}
}

// connCount reports how many connections n has to peer: the one in use
// and any being retired.
func (n *Node) connCount(peer trust.PeerID) int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	ps := n.peers[peer]
	if ps == nil {
		return 0
	}
	count := len(ps.others)
	if ps.conn != nil {
		count++
	}
	return count
}

// register adopts a freshly authenticated connection, dialled or accepted
// at started. If the peer already has one, the reconnect and tie-break
// rules of prefer choose which to keep (protocol §5.4); the other is
// retired or closed so that no call is lost.
func (n *Node) register(sc *wire.Conn, dialed bool, started time.Duration) error {
	peer := sc.RemotePeer()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		sc.Close()
		return ErrClosed
	}
	if !n.trust.Contains(peer) { // untrusted while handshaking
		n.mu.Unlock()
		sc.Close()
		return fmt.Errorf("%w: %s", ErrNotTrusted, peer)
	}
	ps := n.peerLocked(peer)
	c := newConn(n, sc, dialed, started, ps.budget)
	var loser *conn
	switch {
	case ps.conn == nil:
		ps.conn = c
	case n.prefer(c, ps.conn):
		loser, ps.conn = ps.conn, c
	default:
		loser = c
	}
	sameSide := false
	if loser != nil {
		ps.others = append(ps.others, loser)
		sameSide = loser.dialed == ps.conn.dialed
	}
	c.start()
	how := "accepted"
	if dialed {
		how = "dialed"
	}
	switch {
	case ps.conn != c:
	case loser != nil && loser.up:
		// The peer stays up: the new connection carries on its "up".
		loser.up, c.up = false, true
	default:
		// Emitted under n.mu, as every down is, so that subscribers see a
		// peer's ups and downs in the order they happened.
		c.up = true
		n.log.Info("peer up", "peer", peer, "remote", sc.RemoteAddr(), "how", how)
		n.events.emit(PeerEvent{Peer: peer, Up: true, Addr: sc.RemoteAddr().String(), Via: how, Source: ps.via, Time: time.Now()})
	}
	n.mu.Unlock()
	if loser != nil {
		if sameSide {
			// The side that dialled both knows the old one is dead; its
			// calls there are lost already, and ours would wait for
			// replies that cannot come.
			n.log.Debug("fresh connection from the same side replaces the old one", "peer", peer.Short(), "dialed_by_us", dialed)
			loser.shutdownWith(errReplacedFresh, wire.GoawayNormal, "replaced by your fresh connection")
		} else {
			n.log.Debug("two connections to one peer; retiring one", "peer", peer.Short(), "kept_dialed_by_us", !loser.dialed)
			loser.retire()
		}
	}
	return nil
}

// prefer reports whether a, a new connection, should be kept over b, the
// one in use for the same peer. Both sides evaluate it alike:
//   - same direction: the fresher wins. Its dialer dials only when it has
//     no connection in use, one dial per address at a time, so for it the
//     old one is dead; the acceptor, which may not know yet, orders them by
//     accept time.
//   - opposite directions (simultaneous dials): the one dialled by the
//     smaller PeerID wins.
func (n *Node) prefer(a, b *conn) bool {
	if a.dialed == b.dialed {
		return a.started > b.started
	}
	self, peer := n.Identity().Bytes(), a.peer.Bytes()
	weAreSmaller := bytes.Compare(self[:], peer[:]) < 0
	return a.dialed == weAreSmaller
}

// downLocked emits the peer's down event if c carries its "up". n.mu held.
func (n *Node) downLocked(c *conn, reason error) {
	if c == nil || !c.up {
		return
	}
	c.up = false
	n.log.Info("peer down", "peer", c.peer, "reason", reason)
	n.events.emit(PeerEvent{Peer: c.peer, Up: false, Reason: reason, Time: time.Now()})
}

// connGone runs once a connection's goroutines have ended.
func (n *Node) connGone(c *conn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.downLocked(c, c.closeErr())
	ps := n.peers[c.peer]
	if ps == nil {
		return
	}
	for i, o := range ps.others {
		if o == c {
			ps.others = append(ps.others[:i], ps.others[i+1:]...)
			return
		}
	}
	if ps.conn != c {
		return
	}
	ps.conn = nil
	if !n.closed && ps.addr != "" && !ps.suspended {
		n.redialLocked(c.peer, ps, n.cfg.ReconnectMin)
	}
}

// redialLocked starts the peer's redial loop unless one is running. n.mu held.
func (n *Node) redialLocked(peer trust.PeerID, ps *peerState, first time.Duration) {
	if ps.redial != nil || n.closed {
		return
	}
	r := &redialer{wake: make(chan struct{}, 1)}
	ps.redial = r
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.redial(peer, r, first)
	}()
}

// maxRetryGap caps the least time between two dials to one peer when the
// second is for a new address.
const maxRetryGap = time.Second

// redial dials peer with jittered exponential backoff until it is connected,
// untrusted, forgotten or the node closes. A new address for the peer
// (r.wake) starts the backoff over and is dialled at once, abandoning a dial
// in progress to the old one; but no dial starts sooner than ReconnectMin
// (or maxRetryGap, if less) after the one before, so hints, which anyone on
// the link can forge, cannot make the node dial a peer more often than that.
func (n *Node) redial(peer trust.PeerID, r *redialer, wait time.Duration) {
	backoff := n.cfg.ReconnectMin
	gap := min(n.cfg.ReconnectMin, maxRetryGap)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var last time.Time // when the last dial started
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-timer.C:
		case <-r.wake:
			backoff = n.cfg.ReconnectMin
			if d := time.Until(last.Add(gap)); d > 0 {
				timer.Reset(d)
				select {
				case <-n.ctx.Done():
					return
				case <-timer.C:
				}
			}
		}
		n.mu.Lock()
		ps := n.peers[peer]
		if ps == nil || ps.redial != r {
			n.mu.Unlock() // forgotten while we waited; a new loop may own it
			return
		}
		if ps.conn != nil || ps.addr == "" || ps.suspended || n.closed {
			ps.redial = nil
			n.mu.Unlock()
			return
		}
		addr := ps.addr
		ctx, cancel := context.WithCancel(n.ctx)
		r.cancel, r.addr = cancel, addr
		n.mu.Unlock()

		last = time.Now()
		n.log.Debug("redialling", "peer", peer.Short(), "addr", addr)
		err := n.dial(ctx, peer, addr, ps)
		moved := ctx.Err() != nil && n.ctx.Err() == nil
		cancel()
		n.mu.Lock()
		r.cancel, r.addr = nil, ""
		if err == nil || err == errSameAddr || errors.Is(err, ErrAlreadyConnected) {
			ps := n.peers[peer]
			if ps == nil || ps.redial != r || ps.conn != nil {
				if ps != nil && ps.redial == r {
					ps.redial = nil
				}
				n.mu.Unlock()
				return
			}
			// The connection dropped before we got here, when connGone
			// could not start a loop because this one was running.
			n.mu.Unlock()
			backoff = n.cfg.ReconnectMin
			timer.Reset(jitter(backoff))
			continue
		}
		n.mu.Unlock()
		if moved {
			n.log.Debug("peer has a new address; abandoning the dial to its old one", "peer", peer.Short(), "addr", addr)
		} else {
			n.log.Debug("redial failed", "peer", peer.Short(), "addr", addr, "error", err, "retry_in", backoff)
		}
		timer.Reset(jitter(backoff))
		backoff = min(2*backoff, n.cfg.ReconnectMax)
	}
}

// jitter spreads d over [d/2, d) so that peers that lost each other at the
// same moment do not redial in lockstep.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// livenessLoop watches every connection from one loop, so an idle
// connection costs no goroutine or timer of its own. It ticks four times
// per PingInterval and sees a connection's silence to within a tick: one
// that has received nothing for half a PingInterval is pinged, one silent
// for 3/2 of it is closed as dead (so a frozen link is noticed within 7/4
// intervals, and a pong has a whole interval to come back), and one whose
// write has made no progress for WriteTimeout is closed as not reading,
// even if the peer keeps sending.
func (n *Node) livenessLoop() {
	tick := n.cfg.PingInterval / 4
	t := time.NewTicker(tick)
	defer t.Stop()
	// Silence is measured in whole ticks: half a tick of slack keeps a
	// tick that fires a little early from deciding a tick late.
	dead, ping := n.cfg.PingInterval*3/2-tick/2, n.cfg.PingInterval/2-tick/2
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		now := n.now()
		n.admission.flushLog()
		for _, c := range n.conns() {
			if ws := c.writeStart.Load(); ws != 0 && now-time.Duration(ws) > n.cfg.WriteTimeout {
				c.log.Warn("peer does not read; closing connection", "write_timeout", n.cfg.WriteTimeout)
				c.shutdown(&connLostError{fmt.Errorf("%w (%v)", errWriteStuck, n.cfg.WriteTimeout)}, false)
				continue
			}
			if r := c.recv.Load(); r != c.lastRecv || c.paused.Load() {
				// A reader paused for the peer's budget reads nothing,
				// by our choice: the write timeout watches that peer.
				c.lastRecv, c.lastSeen, c.pinged = r, now, false
				continue
			}
			switch silent := now - c.lastSeen; {
			case silent >= dead:
				c.log.Warn("peer silent; closing connection", "silent_for", silent)
				c.shutdown(&connLostError{errors.New("peer did not answer pings")}, false)
			case silent >= ping && !c.pinged:
				c.pinged = true
				c.ping()
			}
		}
	}
}
