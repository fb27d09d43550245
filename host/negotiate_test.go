package host_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/testing/peernettest"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// peerInfo returns n's PeerInfo for peer.
func peerInfo(t testing.TB, n *host.Node, peer trust.PeerID) host.PeerInfo {
	t.Helper()
	for _, p := range n.Peers() {
		if p.ID == peer {
			return p
		}
	}
	t.Fatalf("%s does not list %s", n.Name(), peer.Short())
	return host.PeerInfo{}
}

// TestSuiteNegotiated connects nodes that offer different suites, each way
// round: both ends settle on the dialer's offer and show it in Peers.
func TestSuiteNegotiated(t *testing.T) {
	for _, tt := range []struct{ dialer, responder wire.Suite }{
		{wire.SuiteChaChaPoly, wire.SuiteAESGCM},
		{wire.SuiteAESGCM, wire.SuiteChaChaPoly},
	} {
		t.Run(tt.dialer.String()+" dials", func(t *testing.T) {
			a := peernettest.Node(t, host.Config{CipherSuite: tt.dialer})
			b := peernettest.Node(t, host.Config{CipherSuite: tt.responder})
			peernettest.TrustEach(t, a, b)
			peernettest.Connect(t, a, b)
			expose(t, b, "echo", echo, host.ExposeOptions{})
			if res, err := a.Call(ctxTimeout(t, 5*time.Second), b.Identity(), "echo", []byte("hi")); err != nil || string(res) != "hi" {
				t.Fatalf("call: %q, %v", res, err)
			}
			peernettest.Eventually(t, "b lists a as connected", func() bool { return peerInfo(t, b, a.Identity()).Connected })
			for _, side := range []struct {
				n    *host.Node
				peer trust.PeerID
			}{{a, b.Identity()}, {b, a.Identity()}} {
				if got := peerInfo(t, side.n, side.peer).Suite; got != tt.dialer {
					t.Errorf("%s shows suite %v, want the dialer's %v", side.n.Name(), got, tt.dialer)
				}
			}
		})
	}
}

// TestPeerMessageLimit connects a node that accepts 4 MiB messages with one
// that accepts 64 KiB. Each sends up to the other's limit: a call above it
// fails locally with ErrTooLarge, before anything is sent (the receiver
// would close the connection on an oversized length), and the connection
// stays up.
func TestPeerMessageLimit(t *testing.T) {
	const small = 64 << 10
	big := peernettest.Node(t, host.Config{})
	little := peernettest.Node(t, host.Config{MaxMessageSize: small})
	peernettest.TrustEach(t, big, little)
	peernettest.Connect(t, big, little)
	var served atomic.Int64
	counting := func(_ context.Context, r *host.Request) ([]byte, error) {
		served.Add(1)
		return r.Args, nil
	}
	expose(t, little, "echo", counting, host.ExposeOptions{})
	expose(t, big, "size", func(_ context.Context, r *host.Request) ([]byte, error) {
		return []byte(strconv.Itoa(len(r.Args))), nil
	}, host.ExposeOptions{})

	if got := peerInfo(t, big, little.Identity()).PeerMaxMessageSize; got != small {
		t.Errorf("big sees little's limit as %d, want %d", got, small)
	}
	peernettest.Eventually(t, "little lists big as connected", func() bool { return peerInfo(t, little, big.Identity()).Connected })
	if got := peerInfo(t, little, big.Identity()).PeerMaxMessageSize; got != wire.DefaultMaxMessageSize {
		t.Errorf("little sees big's limit as %d, want %d", got, wire.DefaultMaxMessageSize)
	}

	over := make([]byte, small) // with the call's header, above the limit
	_, err := big.Call(ctxTimeout(t, 5*time.Second), little.Identity(), "echo", over)
	if !errors.Is(err, host.ErrTooLarge) {
		t.Fatalf("call above the peer's limit: %v, want ErrTooLarge", err)
	}
	if err := big.Send(ctxTimeout(t, 5*time.Second), little.Identity(), "echo", over); !errors.Is(err, host.ErrTooLarge) {
		t.Fatalf("send above the peer's limit: %v, want ErrTooLarge", err)
	}
	// The same connection still carries calls: nothing oversized reached
	// little, whose decoder would have closed it.
	fits := bytes.Repeat([]byte("f"), small-wire.CallOverhead-len("echo"))
	if res, err := big.Call(ctxTimeout(t, 5*time.Second), little.Identity(), "echo", fits); err != nil || !bytes.Equal(res, fits) {
		t.Fatalf("call at the peer's limit: %d bytes, %v", len(res), err)
	}
	if n := served.Load(); n != 1 {
		t.Errorf("little served %d calls, want 1 (the one that fit)", n)
	}

	// The other way, little may send big messages: big accepts 4 MiB,
	// whatever little accepts itself.
	large := bytes.Repeat([]byte("L"), 1<<20)
	if res, err := little.Call(ctxTimeout(t, 5*time.Second), big.Identity(), "size", large); err != nil || string(res) != strconv.Itoa(len(large)) {
		t.Fatalf("little's 1 MiB call to big: %q, %v", res, err)
	}
	if !big.Connected(little.Identity()) {
		t.Error("the connection went down")
	}
}

// TestRepliesAfterGoaway checks §5.4 from the receiver's side: after a
// goaway "replaced" the node still delivers the reply to its call in
// flight; after a goaway "normal" it fails the call at once, and a reply
// that follows is not delivered.
func TestRepliesAfterGoaway(t *testing.T) {
	for _, tt := range []struct {
		code    wire.GoawayCode
		reason  string
		wantErr error
	}{
		{wire.GoawayReplaced, "replaced by a newer connection", nil},
		{wire.GoawayNormal, "shutting down", host.ErrConnLost},
	} {
		t.Run(tt.code.String(), func(t *testing.T) {
			n := peernettest.Node(t, host.Config{})
			p := dialRaw(t, n)
			type result struct {
				body []byte
				err  error
			}
			done := make(chan result, 1)
			ctx := ctxTimeout(t, 10*time.Second)
			go func() {
				body, err := n.Call(ctx, p.id.PeerID(), "h", []byte("q"))
				done <- result{body, err}
			}()
			dec := wire.NewDecoder(p.conn, wire.DefaultMaxMessageSize)
			var call wire.Message
			if err := dec.Decode(&call); err != nil || call.Type != wire.TypeCall {
				t.Fatalf("reading the node's call: %v, %v", call.Type, err)
			}
			p.write(t,
				&wire.Message{Type: wire.TypeGoaway, Code: tt.code, Body: []byte(tt.reason)},
				&wire.Message{Type: wire.TypeReply, ID: call.ID, Status: wire.StatusOK, Body: []byte("answer")})
			r := <-done
			switch {
			case tt.wantErr == nil && (r.err != nil || string(r.body) != "answer"):
				t.Errorf("call: %q, %v; want the reply that followed the goaway", r.body, r.err)
			case tt.wantErr != nil && !errors.Is(r.err, tt.wantErr):
				t.Errorf("call: %q, %v; want %v", r.body, r.err, tt.wantErr)
			}
			var ge *host.GoawayError
			if tt.wantErr != nil && (!errors.As(r.err, &ge) || ge.Code != tt.code || ge.Reason != tt.reason) {
				t.Errorf("call error %v does not carry the goaway %v %q", r.err, tt.code, tt.reason)
			}
		})
	}
}

// TestGoawayReasons checks that every goaway the node sends says why in
// its reason text (docs/protocol.md §5.1).
func TestGoawayReasons(t *testing.T) {
	for _, tt := range []struct {
		name  string
		close func(n *host.Node, p *rawPeer)
		code  wire.GoawayCode
	}{
		{"untrusted", func(n *host.Node, p *rawPeer) {
			if err := n.Untrust(p.id.PeerID()); err != nil {
				t.Error(err)
			}
		}, wire.GoawayUntrusted},
		{"shutdown", func(n *host.Node, _ *rawPeer) { n.Close() }, wire.GoawayNormal},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := peernettest.Node(t, host.Config{})
			p := dialRaw(t, n)
			tt.close(n, p)
			p.conn.SetReadDeadline(time.Now().Add(peernettest.Timeout))
			dec := wire.NewDecoder(p.conn, wire.DefaultMaxMessageSize)
			var m wire.Message
			for {
				if err := dec.Decode(&m); err != nil {
					t.Fatalf("no goaway before the connection ended: %v", err)
				}
				if m.Type == wire.TypeGoaway {
					break
				}
			}
			if m.Code != tt.code || len(m.Body) == 0 {
				t.Errorf("goaway %v %q, want code %v with a reason", m.Code, m.Body, tt.code)
			}
		})
	}
}
