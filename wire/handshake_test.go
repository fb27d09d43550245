package wire

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flynn/noise"
	"github.com/peernet/peernet/trust"
)

func TestCipherSuiteName(t *testing.T) {
	for suite, want := range map[Suite]string{
		SuiteChaChaPoly: "Noise_XX_25519_ChaChaPoly_BLAKE2s",
		SuiteAESGCM:     "Noise_XX_25519_AESGCM_BLAKE2s",
	} {
		if got := "Noise_XX_" + string(cipherSuite(&x25519{}, suite).Name()); got != want {
			t.Errorf("%v: protocol name %q, want %q (§3.1)", suite, got, want)
		}
	}
}

func TestHandshake(t *testing.T) {
	checkLeaks(t)
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	tests := []struct {
		name              string
		dialer, responder *Local
	}{
		{"a dials b", a, b},
		{"b dials a", b, a},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var authorized atomic.Value
			authorize := func(p trust.PeerID) Verdict {
				authorized.Store(p)
				return Accept
			}
			d, r := tcpPair(t)
			cr, sr := runHandshake(t, testContext(t, 10*time.Second), d, r, tt.dialer, tt.responder, tt.responder.PeerID(), authorize)
			if cr.err != nil || sr.err != nil {
				t.Fatalf("handshake: client: %v; server: %v", cr.err, sr.err)
			}
			if got := cr.conn.RemotePeer(); got != tt.responder.PeerID() {
				t.Errorf("client's RemotePeer = %s, want %s", got, tt.responder.PeerID())
			}
			if got := sr.conn.RemotePeer(); got != tt.dialer.PeerID() {
				t.Errorf("server's RemotePeer = %s, want %s", got, tt.dialer.PeerID())
			}
			if got, _ := authorized.Load().(trust.PeerID); got != tt.dialer.PeerID() {
				t.Errorf("authorize got %s, want %s", got, tt.dialer.PeerID())
			}
			exchange(t, cr.conn, sr.conn, []byte("ping from dialer"))
			exchange(t, sr.conn, cr.conn, []byte("pong from responder"))
		})
	}
}

// exchange writes msg on from and checks that to reads exactly it.
func exchange(t testing.TB, from, to net.Conn, msg []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := from.Write(msg)
		errc <- err
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(to, got); err != nil {
		t.Fatalf("reading: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("writing: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("read %q, want %q", got, msg)
	}
}

func TestHandshakeWrongPeer(t *testing.T) {
	checkLeaks(t)
	a, b, c := newTestLocal(t, "a"), newTestLocal(t, "b"), newTestLocal(t, "c")
	d, r := tcpPair(t)
	spyD, spyR := &spyConn{Conn: d}, &spyConn{Conn: r}
	var called atomic.Bool
	authorize := func(trust.PeerID) Verdict { called.Store(true); return Accept }

	// a means to reach c, but b answers.
	cr, sr := runHandshake(t, testContext(t, 10*time.Second), spyD, spyR, a, b, c.PeerID(), authorize)

	var wp *WrongPeerError
	if !errors.As(cr.err, &wp) || !errors.Is(cr.err, ErrWrongPeer) {
		t.Fatalf("client error = %v, want a *WrongPeerError matching ErrWrongPeer", cr.err)
	}
	if wp.Expected != c.PeerID() || wp.Actual != b.PeerID() {
		t.Errorf("WrongPeerError{Expected: %s, Actual: %s}, want {%s, %s}", wp.Expected, wp.Actual, c.PeerID(), b.PeerID())
	}
	// The responder saw the dialer close where message 3 would start, having
	// read only the preamble and message 1.
	if !errors.Is(sr.err, io.EOF) {
		t.Errorf("server error = %v, want EOF while reading message 3", sr.err)
	}
	if got, want := spyR.readBytes.Load(), int64(preambleLen+handshakeLenSize+msg1Len); got != want {
		t.Errorf("responder read %d bytes, want %d (preamble and message 1 only)", got, want)
	}
	if got := spyD.writeCalls.Load(); got != 1 {
		t.Errorf("dialer made %d writes, want 1 (preamble with message 1)", got)
	}
	if called.Load() {
		t.Error("authorize was called without message 3")
	}
	if !spyD.closed.Load() || !spyR.closed.Load() {
		t.Errorf("raw conns closed: dialer %v, responder %v; want both", spyD.closed.Load(), spyR.closed.Load())
	}
}

func TestHandshakeRefused(t *testing.T) {
	checkLeaks(t)
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	tests := []struct {
		name                string
		verdict             Verdict
		serverErr, clientEr error
	}{
		{"untrusted", RefuseUntrusted, ErrNotTrusted, ErrNotTrustedByPeer},
		{"busy", RefuseBusy, ErrBusy, ErrPeerBusy},
		// An invalid verdict is not sent: the dialer just sees the close.
		{"invalid verdict", Verdict(7), ErrBadVerdict, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got atomic.Value
			authorize := func(p trust.PeerID) Verdict { got.Store(p); return tt.verdict }
			d, r := tcpPair(t)
			spyR := &spyConn{Conn: r}
			cr, sr := runHandshake(t, testContext(t, 10*time.Second), d, spyR, a, b, b.PeerID(), authorize)
			if !errors.Is(sr.err, tt.serverErr) || sr.conn != nil {
				t.Errorf("server: %v, %v; want error %v", sr.conn, sr.err, tt.serverErr)
			}
			if !errors.Is(cr.err, tt.clientEr) || cr.conn != nil {
				t.Errorf("client: %v, %v; want error %v", cr.conn, cr.err, tt.clientEr)
			}
			if p, _ := got.Load().(trust.PeerID); p != a.PeerID() {
				t.Errorf("authorize got %s, want %s", p, a.PeerID())
			}
			if !spyR.closed.Load() {
				t.Error("responder did not close its raw conn after refusing")
			}
		})
	}
}

func TestHandshakeBadIdentity(t *testing.T) {
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	// forged presents b's identity payload with a's Noise static key: the
	// signature does not bind that key.
	forged := *a
	forged.payload = b.payload

	t.Run("responder", func(t *testing.T) {
		d, r := tcpPair(t)
		cr, sr := runHandshake(t, testContext(t, 10*time.Second), d, r, a, &forged, b.PeerID(), acceptAll)
		if !errors.Is(cr.err, ErrBadPayload) {
			t.Errorf("client error = %v, want ErrBadPayload", cr.err)
		}
		if !errors.Is(sr.err, io.EOF) {
			t.Errorf("server error = %v, want EOF reading message 3", sr.err)
		}
	})
	t.Run("dialer", func(t *testing.T) {
		var called atomic.Bool
		d, r := tcpPair(t)
		cr, sr := runHandshake(t, testContext(t, 10*time.Second), d, r, &forged, a,
			a.PeerID(), func(trust.PeerID) Verdict { called.Store(true); return Accept })
		if !errors.Is(sr.err, ErrBadPayload) {
			t.Errorf("server error = %v, want ErrBadPayload", sr.err)
		}
		if cr.err == nil {
			t.Error("client succeeded")
		}
		if called.Load() {
			t.Error("authorize called for a forged identity")
		}
	})
}

// rawPeer plays one side of a handshake by hand: it writes script at once
// (then half-closes if closeWrite), then reads until the other side closes.
// It returns what it read.
func rawPeer(raw net.Conn, script []byte, closeWrite bool) <-chan []byte {
	ch := make(chan []byte, 1)
	go func() {
		raw.Write(script)
		if closeWrite {
			raw.(*net.TCPConn).CloseWrite()
		}
		got, _ := io.ReadAll(raw)
		raw.Close()
		ch <- got
	}()
	return ch
}

func TestHandshakeBadLengths(t *testing.T) {
	checkLeaks(t)
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	// Both sides offer or accept ChaChaPoly, so the scripted preamble
	// passes as either side's.
	a, b = newTestLocalSuite(t, "a", SuiteChaChaPoly), newTestLocalSuite(t, "b", SuiteChaChaPoly)
	pre := appendPreamble(nil, ProtocolVersion, SuiteChaChaPoly)
	msg := func(n int, body int) []byte {
		return append(append(bytes.Clone(pre), byte(n>>8), byte(n)), make([]byte, body)...)
	}
	tests := []struct {
		name   string
		server bool // the real side under test
		script []byte
		want   error
	}{
		// The body of an oversized message is never sent: an implementation
		// that waited for it would hit the deadline instead.
		{"message 1 of 65535", true, msg(0xffff, 0), ErrHandshakeTooLarge},
		{"message 1 of 33", true, msg(33, 0), ErrHandshakeTooLarge},
		{"message 1 of 31", true, msg(31, 31), ErrBadHandshake},
		{"message 1 of 0", true, msg(0, 0), ErrBadHandshake},
		{"message 2 of 1025", false, msg(MaxHandshakeMessage+1, 0), ErrHandshakeTooLarge},
		{"message 2 of 65535", false, msg(0xffff, 0), ErrHandshakeTooLarge},
		{"message 2 of 0", false, msg(0, 0), ErrBadHandshake},
		{"message 2 garbage", false, msg(200, 200), ErrBadHandshake},
		{"message 2 truncated", false, msg(200, 100), io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t, 10*time.Second)
			d, r := tcpPair(t)
			var err error
			if tt.server {
				rawPeer(d, tt.script, false)
				_, err = Server(ctx, r, b, acceptAll)
			} else {
				peer := rawPeer(r, tt.script, tt.want == io.ErrUnexpectedEOF)
				_, err = Client(ctx, d, a, b.PeerID())
				<-peer
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
			if ctx.Err() != nil {
				t.Errorf("handshake ran into its deadline")
			}
		})
	}
}

func TestHandshakeStalled(t *testing.T) {
	checkLeaks(t)
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	a, b = newTestLocalSuite(t, "a", SuiteChaChaPoly), newTestLocalSuite(t, "b", SuiteChaChaPoly)
	pre := appendPreamble(nil, ProtocolVersion, SuiteChaChaPoly)
	tests := []struct {
		name   string
		server bool   // the real side under test
		script []byte // what the stalled peer sends before going silent
		cancel bool   // cancel ctx instead of letting its deadline pass
		want   error
	}{
		{"silent dialer", true, nil, false, context.DeadlineExceeded},
		{"dialer stops after preamble", true, pre, false, context.DeadlineExceeded},
		{"dialer stops inside message 1", true, append(bytes.Clone(pre), 0, 32, 1, 2, 3), false, context.DeadlineExceeded},
		{"silent responder", false, nil, false, context.DeadlineExceeded},
		{"responder stops after preamble", false, pre, false, context.DeadlineExceeded},
		{"cancelled dialer", false, pre, true, context.Canceled},
		{"cancelled responder", true, pre, true, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx context.Context
			if tt.cancel {
				c, cancel := context.WithCancel(context.Background())
				t.Cleanup(cancel)
				time.AfterFunc(50*time.Millisecond, cancel)
				ctx = c
			} else {
				ctx = testContext(t, 100*time.Millisecond)
			}
			d, r := tcpPair(t)
			raw, stalled := d, r
			if tt.server {
				raw, stalled = r, d
			}
			spy := &spyConn{Conn: raw}
			stalled.Write(tt.script)
			start := time.Now()
			var err error
			if tt.server {
				_, err = Server(ctx, spy, b, acceptAll)
			} else {
				_, err = Client(ctx, spy, a, b.PeerID())
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
			if !tt.cancel && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("error = %v, want it to match os.ErrDeadlineExceeded too", err)
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("handshake took %v to give up", el)
			}
			if !spy.closed.Load() {
				t.Error("raw conn not closed")
			}
		})
	}
}

func TestHandshakeDoneContext(t *testing.T) {
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, _ := tcpPair(t)
	spy := &spyConn{Conn: d}
	if _, err := Client(ctx, spy, a, b.PeerID()); !errors.Is(err, context.Canceled) {
		t.Errorf("Client with a done context: %v, want context.Canceled", err)
	}
	if !spy.closed.Load() {
		t.Error("raw conn not closed")
	}
	if n := spy.writeCalls.Load(); n != 0 {
		t.Errorf("%d writes with a done context", n)
	}
}

func TestHandshakeDefaultTimeout(t *testing.T) {
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	d, r := tcpPair(t)
	spy := &spyConn{Conn: d}
	start := time.Now()
	r.Close() // end the handshake at once; only the deadline it set matters
	if _, err := Client(context.Background(), spy, a, b.PeerID()); err == nil {
		t.Fatal("Client succeeded against a closed peer")
	}
	spy.mu.Lock()
	defer spy.mu.Unlock()
	if len(spy.deadlines) == 0 {
		t.Fatal("no deadline set")
	}
	got := spy.deadlines[0].Sub(start)
	if got < DefaultHandshakeTimeout-time.Second || got > DefaultHandshakeTimeout+time.Second {
		t.Errorf("deadline %v after the start, want about %v", got, DefaultHandshakeTimeout)
	}
}

func TestHandshakeClearsDeadline(t *testing.T) {
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	deadline, _ := ctx.Deadline()
	d, r := tcpPair(t)
	cr, sr := runHandshake(t, ctx, d, r, a, b, b.PeerID(), acceptAll)
	if cr.err != nil || sr.err != nil {
		t.Fatalf("handshake: client: %v; server: %v", cr.err, sr.err)
	}
	cancel()
	// The Conns must outlive both the cancellation and the deadline.
	time.Sleep(time.Until(deadline) + 10*time.Millisecond)
	exchange(t, cr.conn, sr.conn, []byte("after the deadline"))
	exchange(t, sr.conn, cr.conn, []byte("both ways"))
}

func TestHandshakeBadArguments(t *testing.T) {
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	ctx := testContext(t, 10*time.Second)
	tests := []struct {
		name string
		run  func(raw net.Conn) (*Conn, error)
	}{
		{"Client zero expect", func(raw net.Conn) (*Conn, error) { return Client(ctx, raw, a, trust.PeerID{}) }},
		{"Client nil local", func(raw net.Conn) (*Conn, error) { return Client(ctx, raw, nil, b.PeerID()) }},
		{"Server nil authorize", func(raw net.Conn) (*Conn, error) { return Server(ctx, raw, b, nil) }},
		{"Server nil local", func(raw net.Conn) (*Conn, error) { return Server(ctx, raw, nil, acceptAll) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := tcpPair(t)
			spy := &spyConn{Conn: d}
			c, err := tt.run(spy)
			if err == nil || c != nil {
				t.Errorf("got %v, %v; want an error", c, err)
			}
			if !spy.closed.Load() {
				t.Error("raw conn not closed")
			}
		})
	}
}

// fakeResponder runs a correct responder handshake on raw by hand, then
// sends verdict as the raw bytes of the first record. It reports failures on
// the returned channel.
func fakeResponder(ctx context.Context, raw net.Conn, local *Local, verdict func(suite Suite, sendKey [32]byte) []byte) <-chan error {
	errc := make(chan error, 1)
	go func() {
		defer raw.Close()
		errc <- func() error {
			h, err := newHandshake(ctx, raw, local, false)
			if err != nil {
				return err
			}
			if _, err := raw.Write(appendPreamble(nil, ProtocolVersion, acceptedSuites)); err != nil {
				return err
			}
			offer, err := h.readPreamble()
			if err != nil {
				return err
			}
			suite, err := parseOffer(offer)
			if err != nil {
				return err
			}
			if err := h.start(suite); err != nil {
				return err
			}
			msg1, err := h.readMessage(msg1Len, msg1Len)
			if err != nil {
				return err
			}
			if _, _, _, err := h.hs.ReadMessage(nil, msg1); err != nil {
				return err
			}
			out, _, _, err := h.writeMessage(nil, local.payload)
			if err != nil {
				return err
			}
			if _, err := raw.Write(out); err != nil {
				return err
			}
			msg3, err := h.readMessage(1, MaxHandshakeMessage)
			if err != nil {
				return err
			}
			_, _, send, err := h.hs.ReadMessage(nil, msg3)
			if err != nil {
				return err
			}
			if _, err := raw.Write(verdict(suite, send.UnsafeKey())); err != nil {
				return err
			}
			io.Copy(io.Discard, raw)
			return nil
		}()
	}()
	return errc
}

func TestHandshakeBadVerdict(t *testing.T) {
	checkLeaks(t)
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	tests := []struct {
		name    string
		verdict func(t testing.TB, s Suite, key [32]byte) []byte
		want    error
	}{
		{"unknown byte", func(t testing.TB, s Suite, k [32]byte) []byte { return sealRecordSuite(t, s, k, 0, []byte{3}) }, ErrBadVerdict},
		{"empty record", func(t testing.TB, s Suite, k [32]byte) []byte { return sealRecordSuite(t, s, k, 0, nil) }, ErrBadVerdict},
		{"two bytes", func(t testing.TB, s Suite, k [32]byte) []byte { return sealRecordSuite(t, s, k, 0, []byte{0, 0}) }, ErrBadVerdict},
		{"wrong nonce", func(t testing.TB, s Suite, k [32]byte) []byte { return sealRecordSuite(t, s, k, 1, []byte{0}) }, ErrRecordAuth},
		{"zero length", func(t testing.TB, s Suite, k [32]byte) []byte { return []byte{0, 0} }, ErrBadRecord},
		{"accept, then data in the same segment", func(t testing.TB, s Suite, k [32]byte) []byte {
			return append(sealRecordSuite(t, s, k, 0, []byte{0}), sealRecordSuite(t, s, k, 1, []byte("hello"))...)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t, 10*time.Second)
			d, r := tcpPair(t)
			errc := fakeResponder(ctx, r, b, func(s Suite, k [32]byte) []byte { return tt.verdict(t, s, k) })
			c, err := Client(ctx, d, a, b.PeerID())
			if !errors.Is(err, tt.want) {
				t.Errorf("Client error = %v, want %v", err, tt.want)
			}
			if c != nil {
				got := make([]byte, 5)
				if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello" {
					t.Errorf("reading after the verdict: %q, %v", got, err)
				}
				c.Close()
			}
			if err := <-errc; err != nil {
				t.Errorf("fake responder: %v", err)
			}
		})
	}
}

func TestNewLocal(t *testing.T) {
	good := newTestSigner(t, "good")
	other := newTestSigner(t, "other")
	tests := []struct {
		name   string
		signer Signer
		cfg    Config
	}{
		{"nil", nil, Config{}},
		{"zero PeerID", &testSigner{priv: good.priv}, Config{}},
		{"signature by another key", &testSigner{priv: other.priv, id: good.id}, Config{}},
		{"max message size too small", good, Config{MaxMessageSize: MinMaxMessageSize - 1}},
		{"max message size too large", good, Config{MaxMessageSize: MaxMaxMessageSize + 1}},
		{"negative max message size", good, Config{MaxMessageSize: -1}},
		{"unknown suite", good, Config{Suite: 0x04}},
		{"two suites", good, Config{Suite: SuiteChaChaPoly | SuiteAESGCM}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l, err := NewLocal(tt.signer, tt.cfg); err == nil {
				t.Errorf("NewLocal = %v, want an error", l)
			}
		})
	}
	l, err := NewLocal(good, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if l.PeerID() != good.id {
		t.Errorf("PeerID = %s, want %s", l.PeerID(), good.id)
	}
	if l.MaxMessageSize() != DefaultMaxMessageSize || l.Suite() != DefaultSuite() {
		t.Errorf("defaults: max %d, suite %v; want %d, %v", l.MaxMessageSize(), l.Suite(), DefaultMaxMessageSize, DefaultSuite())
	}
	if pi, err := parsePayload(l.payload, l.keypair.Public); err != nil || pi.maxSize != DefaultMaxMessageSize {
		t.Errorf("own payload: %+v, %v", pi, err)
	}
	l, err = NewLocal(good, Config{MaxMessageSize: MinMaxMessageSize, Suite: SuiteChaChaPoly})
	if err != nil {
		t.Fatal(err)
	}
	if pi, err := parsePayload(l.payload, l.keypair.Public); err != nil || pi.maxSize != MinMaxMessageSize || l.Suite() != SuiteChaChaPoly {
		t.Errorf("configured payload: %+v, %v, suite %v", pi, err, l.Suite())
	}
}

func TestParsePayload(t *testing.T) {
	l := newTestLocal(t, "a")
	other := newTestLocal(t, "b")
	static := l.keypair.Public
	mod := func(f func(p []byte) []byte) []byte { return f(bytes.Clone(l.payload)) }
	tests := []struct {
		name    string
		payload []byte
		static  []byte
		ok      bool
	}{
		{"valid", l.payload, static, true},
		{"empty", nil, static, false},
		{"short", l.payload[:payloadLen-1], static, false},
		{"long", append(bytes.Clone(l.payload), 0), static, false},
		{"version 0", mod(func(p []byte) []byte { p[0] = 0; return p }), static, false},
		{"version 1", mod(func(p []byte) []byte { p[0] = 1; return p }), static, false},
		{"version 3", mod(func(p []byte) []byte { p[0] = 3; return p }), static, false},
		{"version 1 layout", append([]byte{1}, append(bytes.Clone(l.payload[1:33]), l.payload[37:]...)...), static, false},
		{"max size 0", withMaxSize(l.payload, 0), static, false},
		{"max size below the minimum", withMaxSize(l.payload, MinMaxMessageSize-1), static, false},
		{"max size above the maximum", withMaxSize(l.payload, MaxMaxMessageSize+1), static, false},
		{"max size 2^32-1", withMaxSize(l.payload, 0xffffffff), static, false},
		{"max size at the minimum", withMaxSize(l.payload, MinMaxMessageSize), static, true},
		{"max size at the maximum", withMaxSize(l.payload, MaxMaxMessageSize), static, true},
		{"zero key", mod(func(p []byte) []byte { clear(p[1:33]); return p }), static, false},
		{"flipped key bit", mod(func(p []byte) []byte { p[5] ^= 1; return p }), static, false},
		{"flipped signature bit", mod(func(p []byte) []byte { p[60] ^= 1; return p }), static, false},
		{"another Noise key", l.payload, other.keypair.Public, false},
		{"short Noise key", l.payload, static[:31], false},
		{"another's payload", other.payload, static, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pi, err := parsePayload(tt.payload, tt.static)
			switch {
			case tt.ok && (err != nil || pi.id != l.PeerID()):
				t.Errorf("parsePayload = %+v, %v; want %s", pi, err, l.PeerID())
			case !tt.ok && (!errors.Is(err, ErrBadPayload) || pi != (peerIdentity{})):
				t.Errorf("parsePayload = %+v, %v; want ErrBadPayload", pi, err)
			}
		})
	}
}

func TestX25519MatchesNoise(t *testing.T) {
	static, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	staticRaw := static.Bytes()
	d := &x25519{static: static, staticRaw: staticRaw}
	eph, err := d.GenerateKeypair(nil)
	if err != nil {
		t.Fatal(err)
	}
	remote, err := noise.DH25519.GenerateKeypair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		priv []byte
	}{
		{"static (cached)", staticRaw},
		{"ephemeral (cached)", eph.Private},
		{"static copy (parsed)", bytes.Clone(staticRaw)},
		{"other key (parsed)", remote.Private},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.DH(tt.priv, remote.Public)
			if err != nil {
				t.Fatal(err)
			}
			want, err := noise.DH25519.DH(tt.priv, remote.Public)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("DH = %x, noise.DH25519 = %x", got, want)
			}
		})
	}
	pub, err := noise.DH25519.GenerateKeypair(bytes.NewReader(eph.Private))
	if err != nil || !bytes.Equal(pub.Public, eph.Public) {
		t.Errorf("ephemeral public key %x, noise.DH25519 derives %x (%v)", eph.Public, pub.Public, err)
	}
	// A low-order point makes the result all zeros: both refuse it.
	lowOrder := make([]byte, 32)
	if _, err := d.DH(staticRaw, lowOrder); err == nil {
		t.Error("DH with a low-order point succeeded")
	}
	if _, err := noise.DH25519.DH(staticRaw, lowOrder); err == nil {
		t.Error("noise.DH25519 with a low-order point succeeded (test assumption)")
	}
	if d.DHName() != noise.DH25519.DHName() || d.DHLen() != noise.DH25519.DHLen() {
		t.Errorf("name/len %s/%d, want %s/%d", d.DHName(), d.DHLen(), noise.DH25519.DHName(), noise.DH25519.DHLen())
	}
}
