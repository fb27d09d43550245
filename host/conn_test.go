package host_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/testing/peernettest"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// Both nodes dial each other at the same moment, repeatedly, while callers
// on both sides keep calling: every call that started succeeds and each
// pair ends with exactly one connection.
func TestSimultaneousDial(t *testing.T) {
	for round := range 10 {
		a := peernettest.Node(t, host.Config{})
		b := peernettest.Node(t, host.Config{})
		peernettest.TrustEach(t, a, b)
		expose(t, a, "echo", echo, host.ExposeOptions{MaxConcurrent: -1})
		expose(t, b, "echo", echo, host.ExposeOptions{MaxConcurrent: -1})

		stop := make(chan struct{})
		var calls, failures atomic.Int64
		var firstErr atomic.Value
		var callers sync.WaitGroup
		for _, pair := range [][2]*host.Node{{a, b}, {b, a}} {
			callers.Add(1)
			go func() {
				defer callers.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					_, err := pair[0].Call(context.Background(), pair[1].Identity(), "echo", []byte("x"))
					if errors.Is(err, host.ErrNotConnected) {
						continue // not up yet: the call never started
					}
					calls.Add(1)
					if err != nil {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
				}
			}()
		}

		var dials sync.WaitGroup
		gate := make(chan struct{})
		for _, pair := range [][2]*host.Node{{a, b}, {b, a}} {
			dials.Add(1)
			go func() {
				defer dials.Done()
				<-gate
				if err := pair[0].Connect(ctxTimeout(t, 5*time.Second), pair[1].Identity(), peernettest.Addr(pair[1])); err != nil {
					t.Errorf("round %d: %s connect: %v", round, pair[0].Name(), err)
				}
			}()
		}
		close(gate)
		dials.Wait()
		peernettest.Eventually(t, "one connection each side", func() bool {
			return a.ConnCount(b.Identity()) == 1 && b.ConnCount(a.Identity()) == 1
		})
		peernettest.Eventually(t, "calls flowing", func() bool { return calls.Load() > 100 })
		close(stop)
		callers.Wait()
		if n := failures.Load(); n > 0 {
			t.Fatalf("round %d: %d of %d calls failed; first: %v", round, n, calls.Load(), firstErr.Load())
		}
		a.Close()
		b.Close()
	}
}

// proxy forwards TCP between a client and target and can freeze: stop
// forwarding without closing, as a dead peer or a cut cable would.
type proxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool  // freezes every connection, new ones too
	cut    atomic.Int64 // connections numbered below it are frozen
	seq    int64        // connections accepted; serve only
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.seq++
		p.wg.Add(2)
		go p.pipe(c, u, p.seq)
		go p.pipe(u, c, p.seq)
	}
}

// freezeExisting freezes the connections made so far, and not later
// ones: a link that went silent, then came back for new connections.
func (p *proxy) freezeExisting() {
	p.mu.Lock()
	p.cut.Store(int64(len(p.conns)/2) + 1)
	p.mu.Unlock()
}

func (p *proxy) pipe(dst, src net.Conn, seq int64) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			if !p.frozen.Load() && seq >= p.cut.Load() {
				dst.Close() // a frozen link does not carry the close either
			}
			return
		}
		if p.frozen.Load() || seq < p.cut.Load() {
			continue // swallow: the peer has gone silent
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			src.Close()
			return
		}
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func TestLivenessDetectsDeadPeer(t *testing.T) {
	// A ping goes out after half an interval of silence and the link is
	// dead after 3/2: a live peer's pong has a whole interval to come back,
	// which must hold on a loaded machine.
	cfg := host.Config{PingInterval: 500 * time.Millisecond}
	a := peernettest.Node(t, cfg)
	b := peernettest.Node(t, cfg)
	peernettest.TrustEach(t, a, b)
	px := newProxy(t, peernettest.Addr(b))
	if err := a.Connect(ctxTimeout(t, 5*time.Second), b.Identity(), px.addr()); err != nil {
		t.Fatal(err)
	}
	down := make(chan host.PeerEvent, 4)
	cancel := a.Subscribe(func(e host.PeerEvent) {
		if !e.Up {
			down <- e
		}
	})
	defer cancel()

	// Idle but alive: pings keep it up across several intervals.
	deadline := time.Now().Add(4 * cfg.PingInterval)
	for time.Now().Before(deadline) {
		if !a.Connected(b.Identity()) {
			t.Fatal("idle live connection was dropped")
		}
		time.Sleep(20 * time.Millisecond)
	}

	px.frozen.Store(true)
	start := time.Now()
	select {
	case e := <-down:
		if e.Peer != b.Identity() || !errors.Is(e.Reason, host.ErrConnLost) {
			t.Fatalf("down event %+v", e)
		}
		// Documented: within 7/4 intervals; ten leave room for a loaded
		// machine without letting a broken liveness pass.
		if d := time.Since(start); d > 10*cfg.PingInterval {
			t.Fatalf("dead peer detected after %v", d)
		}
	case <-time.After(peernettest.Timeout):
		t.Fatal("dead peer never detected")
	}
}

func TestReconnectAfterPeerRestart(t *testing.T) {
	cfg := host.Config{ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond}
	a := peernettest.Node(t, cfg)
	bcfg := cfg
	bcfg.Name, bcfg.DataDir = "restarting-b", t.TempDir()
	b := peernettest.Node(t, bcfg)
	peernettest.TrustEach(t, a, b)
	peernettest.Connect(t, a, b)
	expose(t, b, "echo", echo, host.ExposeOptions{})

	bcfg.ListenAddr = peernettest.Addr(b)
	b.Close()
	peernettest.Eventually(t, "a sees b down", func() bool { return !a.Connected(b.Identity()) })

	b2 := peernettest.Node(t, bcfg)
	expose(t, b2, "echo", echo, host.ExposeOptions{})
	peernettest.Eventually(t, "a redials b", func() bool { return a.Connected(b2.Identity()) })
	if res, err := a.Call(ctxTimeout(t, 5*time.Second), b2.Identity(), "echo", []byte("again")); err != nil || string(res) != "again" {
		t.Fatalf("call after reconnect: %q, %v", res, err)
	}
}

// rawPeer is a trusted peer that speaks the wire protocol by hand, to send
// what a well-behaved node never would.
type rawPeer struct {
	id   *trust.Identity
	conn *wire.Conn
}

func dialRaw(t testing.TB, n *host.Node) *rawPeer {
	t.Helper()
	id, err := trust.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Trust(id.PeerID(), "raw"); err != nil {
		t.Fatal(err)
	}
	local, err := wire.NewLocal(id, wire.Config{})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("tcp", peernettest.Addr(n))
	if err != nil {
		t.Fatal(err)
	}
	c, err := wire.Client(ctxTimeout(t, 5*time.Second), raw, local, n.Identity())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	peernettest.Eventually(t, "node registers the raw peer", func() bool { return n.Connected(id.PeerID()) })
	return &rawPeer{id: id, conn: c}
}

func (p *rawPeer) write(t testing.TB, msgs ...*wire.Message) {
	t.Helper()
	var buf []byte
	for _, m := range msgs {
		var err error
		if buf, err = wire.AppendMessage(buf, m, wire.DefaultMaxMessageSize); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.conn.Write(buf); err != nil {
		t.Fatal(err)
	}
}

// expectEOF reads c until the node closes it (EOF or reset), failing if it
// stays open past the timeout.
func expectEOF(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(peernettest.Timeout))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("node did not close the connection")
	}
}

// expectClosed reads until the node closes the connection, failing if it
// stays open past the timeout.
func (p *rawPeer) expectClosed(t testing.TB) {
	t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(peernettest.Timeout))
	_, err := io.Copy(io.Discard, p.conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("node did not close the connection")
	}
}

func TestBadPeerInput(t *testing.T) {
	nodes := peernettest.Nodes(t, 2, host.Config{})
	a, good := nodes[0], nodes[1]
	expose(t, a, "echo", echo, host.ExposeOptions{})

	checkGood := func() {
		t.Helper()
		if res, err := good.Call(ctxTimeout(t, 5*time.Second), a.Identity(), "echo", []byte("ok")); err != nil || string(res) != "ok" {
			t.Fatalf("well-behaved peer's call failed: %q, %v", res, err)
		}
	}

	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"unknown type", []byte{0, 0, 0, 1, 0x7f}},
		{"zero length", []byte{0, 0, 0, 0}},
		{"oversized length", []byte{0x7f, 0xff, 0xff, 0xff, 1}},
		{"call with id 0", []byte{0, 0, 0, 15, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'x'}},
		{"truncated cancel", []byte{0, 0, 0, 3, 4, 0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := dialRaw(t, a)
			if _, err := p.conn.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			p.expectClosed(t)
			peernettest.Eventually(t, "node drops the bad peer", func() bool { return !a.Connected(p.id.PeerID()) })
			checkGood()
		})
	}

	t.Run("reply to unknown id is ignored", func(t *testing.T) {
		p := dialRaw(t, a)
		p.write(t, &wire.Message{Type: wire.TypeReply, ID: 12345, Status: wire.StatusOK, Body: []byte("??")})
		// The connection survives: a call over it still works.
		p.write(t, &wire.Message{Type: wire.TypeCall, ID: 1, Handle: "echo", Body: []byte("hi")})
		dec := wire.NewDecoder(p.conn, wire.DefaultMaxMessageSize)
		var m wire.Message
		p.conn.SetReadDeadline(time.Now().Add(peernettest.Timeout))
		if err := dec.Decode(&m); err != nil || m.Type != wire.TypeReply || m.ID != 1 || string(m.Body) != "hi" {
			t.Fatalf("after stray reply: %+v, %v", m, err)
		}
		checkGood()
	})

	t.Run("peer that never replies", func(t *testing.T) {
		p := dialRaw(t, a)
		_, err := a.Call(ctxTimeout(t, 200*time.Millisecond), p.id.PeerID(), "anything", nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call to silent peer: %v, want DeadlineExceeded", err)
		}
		checkGood()
	})

	t.Run("garbage before handshake", func(t *testing.T) {
		c, err := net.Dial("tcp", peernettest.Addr(a))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		expectEOF(t, c)
		checkGood()
	})
}

func TestHandshakeStallAndFlood(t *testing.T) {
	cfg := host.Config{HandshakeTimeout: 300 * time.Millisecond, MaxHandshakes: 4}
	nodes := peernettest.Nodes(t, 2, cfg)
	a, good := nodes[0], nodes[1]
	expose(t, a, "echo", echo, host.ExposeOptions{})

	// More stalled handshakes than the cap: all are closed, the excess at
	// once and the rest by the handshake deadline.
	var stalled []net.Conn
	for range 12 {
		c, err := net.Dial("tcp", peernettest.Addr(a))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stalled = append(stalled, c)
	}
	// A connected peer carries on meanwhile.
	if res, err := good.Call(ctxTimeout(t, 5*time.Second), a.Identity(), "echo", []byte("ok")); err != nil || string(res) != "ok" {
		t.Fatalf("call during flood: %q, %v", res, err)
	}
	for _, c := range stalled {
		expectEOF(t, c)
	}
	// Once the stalls are gone, new peers get in.
	c := peernettest.Node(t, host.Config{})
	peernettest.TrustEach(t, a, c)
	peernettest.Connect(t, c, a)
}

// A peer that sends but never reads cannot make the node queue without
// bound: refusals are charged to its memory budget, the node stops reading
// it once that is spent, and drops it by the write timeout.
func TestPeerThatNeverReads(t *testing.T) {
	nodes := peernettest.Nodes(t, 2, host.Config{MaxMessageSize: 4 << 10, MaxWriteQueue: 64 << 10, MaxPeerMemory: 64 << 10, WriteTimeout: 500 * time.Millisecond})
	a, good := nodes[0], nodes[1]
	expose(t, a, "echo", echo, host.ExposeOptions{})
	p := dialRaw(t, a)

	// Calls to a handle that does not exist, each refused from the reader
	// with a small reply, sent in batches and never read.
	var batch []byte
	for i := range 1000 {
		var err error
		batch, err = wire.AppendMessage(batch, &wire.Message{Type: wire.TypeCall, ID: uint64(i + 1), Handle: "nope"}, 0)
		if err != nil {
			t.Fatal(err)
		}
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for {
			p.conn.SetWriteDeadline(time.Now().Add(peernettest.Timeout))
			if _, err := p.conn.Write(batch); err != nil {
				return
			}
		}
	}()
	peernettest.Eventually(t, "node drops the peer that does not read", func() bool { return !a.Connected(p.id.PeerID()) })
	p.conn.Close()
	<-closed
	if res, err := good.Call(ctxTimeout(t, 5*time.Second), a.Identity(), "echo", []byte("ok")); err != nil || string(res) != "ok" {
		t.Fatalf("well-behaved peer's call failed: %q, %v", res, err)
	}
}
