package wire

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/peernet/peernet/trust"
	"go.uber.org/goleak"
)

// testSigner is an ed25519-backed Signer, standing in for trust.Identity.
type testSigner struct {
	priv ed25519.PrivateKey
	id   trust.PeerID
}

func (s *testSigner) PeerID() trust.PeerID   { return s.id }
func (s *testSigner) Sign(msg []byte) []byte { return ed25519.Sign(s.priv, msg) }

// newTestSigner returns a signer whose key is derived from name, so tests are
// reproducible and different names give different peers.
func newTestSigner(t testing.TB, name string) *testSigner {
	t.Helper()
	seed := sha256.Sum256([]byte("wire test identity " + name))
	return signerFromSeed(t, seed[:])
}

func signerFromSeed(t testing.TB, seed []byte) *testSigner {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(seed)
	id, err := trust.PeerIDFromPublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("PeerIDFromPublicKey: %v", err)
	}
	return &testSigner{priv: priv, id: id}
}

// newTestLocal returns a Local for a test identity named name.
func newTestLocal(t testing.TB, name string) *Local {
	t.Helper()
	l, err := NewLocal(newTestSigner(t, name), Config{})
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	return l
}

// newTestLocalSuite returns a Local for a test identity named name that
// offers suite when it dials.
func newTestLocalSuite(t testing.TB, name string, suite Suite) *Local {
	t.Helper()
	l, err := NewLocal(newTestSigner(t, name), Config{Suite: suite})
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	return l
}

// testContext returns a context bounded by d, cancelled at cleanup.
func testContext(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// tcpPair returns the two ends of a fresh loopback TCP connection, closed at
// cleanup.
func tcpPair(t testing.TB) (dialer, responder net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	a := <-ch
	if a.err != nil {
		d.Close()
		t.Fatalf("accepting: %v", a.err)
	}
	t.Cleanup(func() {
		d.Close()
		a.c.Close()
	})
	return d, a.c
}

// acceptAll returns authorize functions' usual test answer.
func acceptAll(trust.PeerID) Verdict { return Accept }

// handshakeResult is what one side of a handshake returned.
type handshakeResult struct {
	conn *Conn
	err  error
}

// runHandshake runs Server on responderRaw in a goroutine and Client on
// dialerRaw, and returns both results once both have returned. Conns are
// closed at cleanup.
func runHandshake(t testing.TB, ctx context.Context, dialerRaw, responderRaw net.Conn,
	dialer, responder *Local, expect trust.PeerID, authorize func(trust.PeerID) Verdict,
) (client, server handshakeResult) {
	t.Helper()
	done := make(chan handshakeResult, 1)
	go func() {
		c, err := Server(ctx, responderRaw, responder, authorize)
		done <- handshakeResult{c, err}
	}()
	c, err := Client(ctx, dialerRaw, dialer, expect)
	client = handshakeResult{c, err}
	server = <-done
	for _, r := range []handshakeResult{client, server} {
		if r.conn != nil {
			t.Cleanup(func() { r.conn.Close() })
		}
	}
	return client, server
}

// connPair returns an accepted pair of Conns over loopback TCP: dialer "a",
// responder "b".
func connPair(t testing.TB) (client, server *Conn) {
	t.Helper()
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	d, r := tcpPair(t)
	cr, sr := runHandshake(t, testContext(t, 10*time.Second), d, r, a, b, b.PeerID(), acceptAll)
	if cr.err != nil || sr.err != nil {
		t.Fatalf("handshake: client: %v; server: %v", cr.err, sr.err)
	}
	return cr.conn, sr.conn
}

// spyConn wraps a net.Conn, counting what passes and optionally rewriting
// writes. It is safe for concurrent use.
type spyConn struct {
	net.Conn
	readBytes  atomic.Int64
	writeCalls atomic.Int64
	closed     atomic.Bool

	mu sync.Mutex
	// mutate, if set, replaces each write's bytes with what it returns (nil
	// drops the write). It runs under mu.
	mutate    func(b []byte) []byte
	deadlines []time.Time // arguments of SetDeadline, in order
}

func (s *spyConn) Read(b []byte) (int, error) {
	n, err := s.Conn.Read(b)
	s.readBytes.Add(int64(n))
	return n, err
}

func (s *spyConn) Write(b []byte) (int, error) {
	s.writeCalls.Add(1)
	s.mu.Lock()
	mutate := s.mutate
	if mutate == nil {
		s.mu.Unlock()
		return s.Conn.Write(b)
	}
	out := mutate(append([]byte(nil), b...))
	s.mu.Unlock()
	if len(out) > 0 {
		if _, err := s.Conn.Write(out); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

func (s *spyConn) Close() error {
	s.closed.Store(true)
	return s.Conn.Close()
}

func (s *spyConn) SetDeadline(t time.Time) error {
	s.mu.Lock()
	s.deadlines = append(s.deadlines, t)
	s.mu.Unlock()
	return s.Conn.SetDeadline(t)
}

func (s *spyConn) setMutate(f func([]byte) []byte) {
	s.mu.Lock()
	s.mutate = f
	s.mu.Unlock()
}

// checkLeaks fails t if goroutines started during the test outlive it and
// its cleanups.
func checkLeaks(t testing.TB) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// isReset reports whether err is a connection reset by the peer.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
