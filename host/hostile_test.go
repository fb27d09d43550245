package host_test

// The hostile-peer suite: each test replays an attack on a node over real
// TCP on loopback, mostly with a raw client built on package wire, and
// asserts the bound the node keeps (see "Hostile peers" in DESIGN.md).

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/testing/peernettest"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// countingObserver counts handshake refusals by reason.
type countingObserver struct {
	mu      sync.Mutex
	refused map[string]int
	ok      atomic.Int64 // inbound handshakes that succeeded
}

func (o *countingObserver) Served(string, host.Kind, wire.Status, time.Duration) {}
func (o *countingObserver) Handshake(inbound bool, err error) {
	if inbound && err == nil {
		o.ok.Add(1)
	}
}
func (o *countingObserver) HandshakeRefused(reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.refused == nil {
		o.refused = map[string]int{}
	}
	o.refused[reason]++
}
func (o *countingObserver) count(reason string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.refused[reason]
}

// newRawIdentity makes an identity that n trusts, and its handshake
// material.
func newRawIdentity(t testing.TB, n *host.Node) (*trust.Identity, *wire.Local) {
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
	return id, local
}

func dialAs(ctx context.Context, n *host.Node, local *wire.Local) (*wire.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", peernettest.Addr(n))
	if err != nil {
		return nil, err
	}
	c, err := wire.Client(ctx, raw, local, n.Identity())
	if err != nil {
		raw.Close()
	}
	return c, err
}

func downEvents(t testing.TB, n *host.Node) <-chan host.PeerEvent {
	t.Helper()
	ch := make(chan host.PeerEvent, 64)
	cancel := n.Subscribe(func(e host.PeerEvent) {
		if !e.Up {
			select {
			case ch <- e:
			default:
			}
		}
	})
	t.Cleanup(cancel)
	return ch
}

// A trusted peer floods calls to a handler with large results and never
// reads: the memory charged to it stays within its budget (plus the one
// request being read), the node stops reading it (its writes block), and
// it is dropped by the write timeout with a reason that says so, even
// though its connection stays open and nothing else times out.
func TestHostileNonReadingPeer(t *testing.T) {
	const (
		budget = 2 << 20
		result = 256 << 10
		msgMax = 1 << 20
	)
	obs := &countingObserver{}
	cfg := host.Config{MaxPeerMemory: budget, MaxMessageSize: msgMax, WriteTimeout: 4 * time.Second, Observer: obs}
	nodes := peernettest.Nodes(t, 2, cfg)
	a, good := nodes[0], nodes[1]
	big := bytes.Repeat([]byte("x"), result)
	var served atomic.Int64
	expose(t, a, "big", func(context.Context, *host.Request) ([]byte, error) {
		served.Add(1)
		return big, nil
	}, host.ExposeOptions{MaxConcurrent: -1})
	expose(t, a, "echo", echo, host.ExposeOptions{})
	downs := downEvents(t, a)

	p := dialRaw(t, a)
	var maxUsed atomic.Int64
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			if u := a.PeerMemory(p.id.PeerID()); u > maxUsed.Load() {
				maxUsed.Store(u)
			}
			select {
			case <-stopWatch:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()

	// Flood until the node stops reading: a write that cannot complete.
	var batch []byte
	id := uint64(0)
	blocked := false
	deadline := time.Now().Add(peernettest.Timeout)
	for !blocked && time.Now().Before(deadline) {
		batch = batch[:0]
		for range 256 {
			id++ // ids stay unique: a repeated one is a protocol error
			batch, _ = wire.AppendMessage(batch, &wire.Message{Type: wire.TypeCall, ID: id, Handle: "big"}, 0)
		}
		p.conn.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		_, err := p.conn.Write(batch)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			blocked = true
		case err != nil:
			t.Fatalf("flood write: %v (dropped before the node stopped reading?)", err)
		}
	}
	if !blocked {
		t.Fatal("the node kept reading a peer that never reads its replies")
	}
	// A well-behaved peer is served meanwhile.
	if res, err := good.Call(ctxTimeout(t, 5*time.Second), a.Identity(), "echo", []byte("ok")); err != nil || string(res) != "ok" {
		t.Fatalf("well-behaved peer's call during the flood: %q, %v", res, err)
	}

	select {
	case e := <-downs:
		if e.Peer != p.id.PeerID() || !errors.Is(e.Reason, host.ErrConnLost) || !errors.Is(e.Reason, host.ErrWriteStuck) {
			t.Fatalf("down event %v; want the raw peer dropped for not reading", e)
		}
	case <-time.After(peernettest.Timeout):
		t.Fatal("a peer that never reads was never dropped")
	}
	close(stopWatch)
	<-watched
	// The budget may be passed by what one request holds while it is
	// read, never by a queued reply.
	if got := maxUsed.Load(); got > budget+msgMax {
		t.Fatalf("peer held %d bytes of the node's memory; budget %d", got, budget)
	}
	if n := served.Load(); n == 0 {
		t.Fatal("no call was served: the test proves nothing")
	}
	peernettest.Eventually(t, "the budget is returned once the peer is gone", func() bool {
		return a.PeerMemory(p.id.PeerID()) == 0
	})
}

// 256 anonymous sockets that connect and stall (idle, or trickling a
// partial preamble) do not keep trusted peers out: every one of 25 fresh
// trusted handshakes succeeds during the attack, the refusals are counted,
// and they are logged in a summary line, not one line per socket.
func TestHostileStalledSockets(t *testing.T) {
	obs := &countingObserver{}
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: lockedWriter{&logs, &logMu}})
	a := peernettest.Node(t, host.Config{Observer: obs, Logger: logger, HandshakeTimeout: 10 * time.Second})

	var stalled []net.Conn
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()
	for i := range 256 {
		c, err := net.Dial("tcp", peernettest.Addr(a))
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			c.Write([]byte("PN")) // slowloris: a partial preamble
		}
		stalled = append(stalled, c)
	}
	peernettest.Eventually(t, "the node evicts stalled sockets", func() bool {
		return obs.count(host.RefusedEvicted) >= 256-host.DefaultMaxHandshakes
	})

	for i := range 25 {
		_, local := newRawIdentity(t, a)
		c, err := dialAs(ctxTimeout(t, 5*time.Second), a, local)
		if err != nil {
			t.Fatalf("trusted handshake %d during the attack: %v", i, err)
		}
		c.Close()
		// The attacker keeps its sockets stalled: open one more for each
		// that was evicted, so the table stays full.
		c2, err := net.Dial("tcp", peernettest.Addr(a))
		if err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, c2)
	}
	peernettest.Eventually(t, "the node counts 25 handshakes", func() bool { return obs.ok.Load() == 25 })
	logMu.Lock()
	lines := strings.Count(logs.String(), "refus")
	logMu.Unlock()
	if refused := obs.count(host.RefusedEvicted); lines > 2 || refused < 256-host.DefaultMaxHandshakes {
		t.Fatalf("%d refusal log lines for %d refusals; want a summary", lines, refused)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// One identity opening many connections gains nothing: its requests in
// flight are capped across all of them, and it never holds more than
// MaxConnsPerPeer connections.
func TestHostileOneIdentityManyConnections(t *testing.T) {
	const perPeer = 16
	a := peernettest.Node(t, host.Config{MaxInflightPerPeer: perPeer})
	release := make(chan struct{})
	var running, maxRunning atomic.Int64
	expose(t, a, "block", func(context.Context, *host.Request) ([]byte, error) {
		v := running.Add(1)
		for {
			m := maxRunning.Load()
			if v <= m || maxRunning.CompareAndSwap(m, v) {
				break
			}
		}
		<-release // ignores cancellation, as a stuck handler would
		running.Add(-1)
		return nil, nil
	}, host.ExposeOptions{MaxConcurrent: -1})
	defer close(release)

	id, local := newRawIdentity(t, a)
	var overloaded int
	for i := range 8 {
		c, err := dialAs(ctxTimeout(t, 5*time.Second), a, local)
		if err != nil {
			if errors.Is(err, wire.ErrPeerBusy) {
				continue // the per-peer connection cap: also a pass
			}
			t.Fatalf("connection %d: %v", i, err)
		}
		defer c.Close()
		if n := a.ConnCount(id.PeerID()); n > host.DefaultMaxConnsPerPeer {
			t.Fatalf("%d connections from one peer; cap %d", n, host.DefaultMaxConnsPerPeer)
		}
		var batch []byte
		for j := range perPeer {
			batch, _ = wire.AppendMessage(batch, &wire.Message{Type: wire.TypeCall, ID: uint64(j + 1), Handle: "block"}, 0)
		}
		if _, err := c.Write(batch); err != nil {
			t.Fatal(err)
		}
		// Every call beyond the cap is answered "overloaded" at once;
		// read those answers (the connection may be replaced by the next
		// one and closed, which ends the reading).
		dec := wire.NewDecoder(c, wire.DefaultMaxMessageSize)
		c.SetReadDeadline(time.Now().Add(peernettest.Timeout))
		var m wire.Message
		want := perPeer
		if i == 0 {
			want = 0
		}
		for got := 0; got < want; got++ {
			if err := dec.Decode(&m); err != nil {
				t.Fatalf("connection %d: reading refusals: %v", i, err)
			}
			if m.Type != wire.TypeReply || m.Status != wire.StatusOverloaded {
				t.Fatalf("connection %d: got %+v; want an overloaded reply", i, m)
			}
			overloaded++
		}
		if i == 0 {
			peernettest.Eventually(t, "the first connection's calls run", func() bool { return running.Load() == perPeer })
		}
	}
	if got := maxRunning.Load(); got > perPeer {
		t.Fatalf("%d requests from one peer ran at once; cap %d", got, perPeer)
	}
	if overloaded == 0 {
		t.Fatal("no call was refused: the cap was not exercised")
	}
}

// After a silent drop (the link freezes, nothing is closed), the side that
// dialled notices by liveness and dials a fresh connection; the other side,
// which would not notice for an hour, adopts it at once: calls flow again
// both ways, and that side never saw the peer go down.
func TestHostileReconnectAfterSilentDrop(t *testing.T) {
	a := peernettest.Node(t, host.Config{PingInterval: 500 * time.Millisecond, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	b := peernettest.Node(t, host.Config{PingInterval: time.Hour})
	peernettest.TrustEach(t, a, b)
	expose(t, a, "echo", echo, host.ExposeOptions{})
	expose(t, b, "echo", echo, host.ExposeOptions{})
	px := newProxy(t, peernettest.Addr(b))
	if err := a.Connect(ctxTimeout(t, 5*time.Second), b.Identity(), px.addr()); err != nil {
		t.Fatal(err)
	}
	peernettest.Eventually(t, "b sees a", func() bool { return b.Connected(a.Identity()) })
	var bEvents []host.PeerEvent
	var evMu sync.Mutex
	cancel := b.Subscribe(func(e host.PeerEvent) {
		evMu.Lock()
		bEvents = append(bEvents, e)
		evMu.Unlock()
	})
	defer cancel()
	if _, err := b.Call(ctxTimeout(t, 5*time.Second), a.Identity(), "echo", []byte("before")); err != nil {
		t.Fatal(err)
	}

	downs := downEvents(t, a)
	px.freezeExisting()
	select {
	case <-downs:
	case <-time.After(peernettest.Timeout):
		t.Fatal("a never noticed the frozen link")
	}
	// b's connection is still the frozen one until a's fresh one arrives;
	// a call on it fails with an error that says the connection went
	// (never silently), and then calls succeed on the fresh one.
	peernettest.Eventually(t, "b's calls to a flow again", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := b.Call(ctx, a.Identity(), "echo", []byte("after"))
		return err == nil
	})
	if res, err := a.Call(ctxTimeout(t, 5*time.Second), b.Identity(), "echo", []byte("a->b")); err != nil || string(res) != "a->b" {
		t.Fatalf("a->b after reconnect: %q, %v", res, err)
	}
	if n := b.ConnCount(a.Identity()); n != 1 {
		peernettest.Eventually(t, "b keeps one connection", func() bool { return b.ConnCount(a.Identity()) == 1 })
	}
	evMu.Lock()
	defer evMu.Unlock()
	for _, e := range bEvents {
		if !e.Up {
			t.Fatalf("b saw %v; the fresh connection should have replaced the old one without a down", e)
		}
	}
}

// Untrusting and re-trusting a peer that reconnects at once, many times,
// while its old connections are still closing: every subscriber sees the
// peer's ups and downs alternate, every up has its down by Close, and a
// subscriber's callback may close the node.
func TestHostileReplaceRacesKeepEventsInOrder(t *testing.T) {
	a := peernettest.Node(t, host.Config{})
	b := peernettest.Node(t, host.Config{})
	peernettest.TrustEach(t, a, b)
	type rec struct {
		mu  sync.Mutex
		evs []host.PeerEvent
	}
	var recs [3]rec
	for i := range recs {
		r := &recs[i]
		a.Subscribe(func(e host.PeerEvent) {
			if e.Peer == b.Identity() {
				r.mu.Lock()
				r.evs = append(r.evs, e)
				r.mu.Unlock()
			}
		})
	}
	peernettest.Connect(t, a, b)
	for range 30 {
		if err := a.Untrust(b.Identity()); err != nil {
			t.Fatal(err)
		}
		if err := a.Trust(b.Identity(), "b"); err != nil {
			t.Fatal(err)
		}
		if err := a.Connect(ctxTimeout(t, 5*time.Second), b.Identity(), peernettest.Addr(b)); err != nil {
			t.Fatal(err)
		}
	}
	// A callback that closes the node from inside delivery.
	closed := make(chan struct{})
	a.Subscribe(func(e host.PeerEvent) {
		if !e.Up {
			a.Close()
			close(closed)
		}
	})
	b.Close()
	select {
	case <-closed:
	case <-time.After(peernettest.Timeout):
		t.Fatal("Close from a callback did not return")
	}
	a.Close()
	for i := range recs {
		r := &recs[i]
		r.mu.Lock()
		evs := r.evs
		r.mu.Unlock()
		if len(evs) != 2*31 {
			t.Fatalf("subscriber %d saw %d events; want %d", i, len(evs), 2*31)
		}
		for j, e := range evs {
			if e.Up != (j%2 == 0) || e.Dropped != 0 {
				t.Fatalf("subscriber %d: event %d is %v (dropped %d); ups and downs must alternate", i, j, e, e.Dropped)
			}
		}
		if evs[len(evs)-1].Up {
			t.Fatalf("subscriber %d: last event is an up with no down", i)
		}
	}
}

// A call id already in flight is a protocol error: the node says goaway
// protocol_error and closes, and the first call is not overwritten.
func TestHostileDuplicateCallID(t *testing.T) {
	a := peernettest.Node(t, host.Config{})
	release := make(chan struct{})
	expose(t, a, "block", func(ctx context.Context, _ *host.Request) ([]byte, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	}, host.ExposeOptions{})
	defer close(release)
	p := dialRaw(t, a)
	p.write(t,
		&wire.Message{Type: wire.TypeCall, ID: 7, Handle: "block"},
		&wire.Message{Type: wire.TypeCall, ID: 7, Handle: "block"})
	dec := wire.NewDecoder(p.conn, wire.DefaultMaxMessageSize)
	p.conn.SetReadDeadline(time.Now().Add(peernettest.Timeout))
	var m wire.Message
	for {
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("connection ended without a goaway: %v", err)
		}
		if m.Type == wire.TypeGoaway {
			break
		}
	}
	if m.Code != wire.GoawayProtocolError {
		t.Fatalf("goaway %v; want protocol_error", m.Code)
	}
	p.expectClosed(t)
}

// Connect never reports a success it did not achieve: to a connected peer
// at another address it says so and keeps the working address; an address
// that does not parse fails before anything is dialled. Disconnect drops
// the peer without untrusting it, and nothing redials it until the next
// Connect.
func TestHostileConnectAndDisconnect(t *testing.T) {
	obs := &countingObserver{}
	cfg := host.Config{ReconnectMin: 5 * time.Millisecond, ReconnectMax: 10 * time.Millisecond}
	a := peernettest.Node(t, cfg)
	cfg.Observer = obs
	b := peernettest.Node(t, cfg)
	obsC := &countingObserver{}
	cfg.Observer = obsC
	c := peernettest.Node(t, cfg)
	peernettest.TrustEach(t, a, b)
	peernettest.TrustEach(t, a, c)
	peernettest.Connect(t, a, b)
	peernettest.Connect(t, a, c)
	addrOf := func() string {
		for _, p := range a.Peers() {
			if p.ID == b.Identity() {
				return p.Addr
			}
		}
		return ""
	}
	before := addrOf()

	if err := a.Connect(ctxTimeout(t, 5*time.Second), b.Identity(), "127.0.0.1:1"); !errors.Is(err, host.ErrAlreadyConnected) {
		t.Fatalf("Connect to a connected peer at another address: %v; want ErrAlreadyConnected", err)
	}
	if err := a.Connect(ctxTimeout(t, 5*time.Second), b.Identity(), peernettest.Addr(b)); err != nil {
		t.Fatalf("Connect again at the same address: %v", err)
	}
	for _, bad := range []string{"notanaddress", "127.0.0.1:", ":80", "127.0.0.1:http"} {
		if err := a.Connect(ctxTimeout(t, 5*time.Second), b.Identity(), bad); !errors.Is(err, host.ErrBadAddr) {
			t.Fatalf("Connect %q: %v; want ErrBadAddr", bad, err)
		}
	}
	if got := addrOf(); got != before || !a.Connected(b.Identity()) {
		t.Fatalf("after refused Connects: addr %q connected %v; want %q, connected", got, a.Connected(b.Identity()), before)
	}

	downs := downEvents(t, a)
	if err := a.Disconnect(b.Identity()); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-downs:
		if !errors.Is(e.Reason, host.ErrConnLost) {
			t.Fatalf("down after Disconnect: %v", e)
		}
	case <-time.After(peernettest.Timeout):
		t.Fatal("no down event after Disconnect")
	}
	if !a.Trusted(b.Identity()) {
		t.Fatal("Disconnect untrusted the peer")
	}
	peernettest.Eventually(t, "b sees a gone", func() bool { return !b.Connected(a.Identity()) })
	// Nothing redials b. That a would have by now is shown by a control
	// peer, c, which drops a again and again while a keeps redialling it.
	handshakes := obs.ok.Load()
	for range 20 {
		seen := obsC.ok.Load()
		peernettest.Eventually(t, "a connected to c", func() bool { return c.Connected(a.Identity()) })
		if err := c.Disconnect(a.Identity()); err != nil {
			t.Fatal(err)
		}
		peernettest.Eventually(t, "a redials c", func() bool { return obsC.ok.Load() > seen })
	}
	if a.Connected(b.Identity()) || obs.ok.Load() != handshakes {
		t.Fatal("a redialled a peer it was told to disconnect")
	}
	if err := a.Disconnect(b.Identity()); !errors.Is(err, host.ErrNotConnected) {
		t.Fatalf("Disconnect of a disconnected peer: %v; want ErrNotConnected", err)
	}
	peernettest.Connect(t, a, b)
}

// What a call reserves for its reply is learned per handle, so a peer
// cannot talk the node into running many large-result handlers at once by
// first making many calls with small results elsewhere: once "big" has
// returned 1 MiB, no more of its calls run at once than the peer's budget
// holds 1 MiB results for, however small the peer's other replies were.
func TestHostileExpectedReplyPerHandle(t *testing.T) {
	const budget = 8 << 20
	b := peernettest.Node(t, host.Config{MaxPeerMemory: budget})
	a := peernettest.Node(t, host.Config{})
	peernettest.TrustEach(t, a, b)
	peernettest.Connect(t, a, b)

	result := make([]byte, 1<<20)
	gate := make(chan struct{})
	var running, maxRunning atomic.Int64
	expose(t, b, "big", func(ctx context.Context, r *host.Request) ([]byte, error) {
		if len(r.Args) == 0 {
			return result, nil // the first call, which teaches the size
		}
		v := running.Add(1)
		for {
			m := maxRunning.Load()
			if v <= m || maxRunning.CompareAndSwap(m, v) {
				break
			}
		}
		<-gate
		running.Add(-1)
		return result, nil
	}, host.ExposeOptions{MaxConcurrent: -1})
	expose(t, b, "small", func(context.Context, *host.Request) ([]byte, error) { return nil, nil }, host.ExposeOptions{MaxConcurrent: -1})

	if _, err := a.Call(ctxTimeout(t, peernettest.Timeout), b.Identity(), "big", nil); err != nil {
		t.Fatal(err)
	}
	for range 200 { // a per-peer estimate would decay to nothing
		if _, err := a.Call(ctxTimeout(t, peernettest.Timeout), b.Identity(), "small", nil); err != nil {
			t.Fatal(err)
		}
	}

	const burst = 200
	var overloaded atomic.Int64
	var wg sync.WaitGroup
	for range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.Call(ctxTimeout(t, peernettest.Timeout), b.Identity(), "big", []byte{1})
			if errors.Is(err, host.ErrOverloaded) {
				overloaded.Add(1)
			} else if err != nil {
				t.Error(err)
			}
		}()
	}
	peernettest.Eventually(t, "every call of the burst running or refused", func() bool {
		return running.Load()+overloaded.Load() == burst
	})
	close(gate)
	wg.Wait()
	if most := int64(budget / (1 << 20)); maxRunning.Load() > most {
		t.Fatalf("%d calls with 1 MiB results ran at once; the %d MiB budget holds %d", maxRunning.Load(), budget>>20, most)
	}
	if overloaded.Load() == 0 {
		t.Fatal("no call was refused: the budget was not exercised")
	}
}

// A handle's expected reply is learned per peer too: one peer whose calls
// return large results does not shrink how many calls another peer may
// run on the same handle.
func TestHostileExpectedReplyPerPeer(t *testing.T) {
	const budget = 8 << 20
	b := peernettest.Node(t, host.Config{MaxPeerMemory: budget})
	a := peernettest.Node(t, host.Config{})
	c := peernettest.Node(t, host.Config{})
	peernettest.TrustEach(t, a, b)
	peernettest.TrustEach(t, c, b)
	peernettest.Connect(t, a, b)
	peernettest.Connect(t, c, b)

	gate := make(chan struct{})
	var running atomic.Int64
	expose(t, b, "get", func(ctx context.Context, r *host.Request) ([]byte, error) {
		if len(r.Args) == 0 {
			return make([]byte, 3<<20), nil // a's large value
		}
		running.Add(1)
		<-gate
		return []byte("small"), nil
	}, host.ExposeOptions{MaxConcurrent: -1})

	if _, err := a.Call(ctxTimeout(t, peernettest.Timeout), b.Identity(), "get", nil); err != nil {
		t.Fatal(err)
	}
	const burst = 64
	errc := make(chan error, burst)
	for range burst {
		go func() {
			_, err := c.Call(ctxTimeout(t, peernettest.Timeout), b.Identity(), "get", []byte{1})
			errc <- err
		}()
	}
	peernettest.Eventually(t, "c's calls all running", func() bool { return running.Load() == burst || len(errc) > 0 })
	close(gate)
	for range burst {
		if err := <-errc; err != nil {
			t.Fatalf("c's call, after a's 3 MiB result from the same handle: %v", err)
		}
	}
}
