package host_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/discovery"
	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/testing/peernettest"
	"github.com/peernet/peernet/trust"
)

// A hint for a trusted peer makes the node dial it with no Connect call; a
// hint for an untrusted key is never dialled.
func TestDiscoveryHints(t *testing.T) {
	b := peernettest.Node(t, host.Config{})

	// A listener posing as an untrusted announcer counts dial attempts.
	trap, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trap.Close() })
	var trapped atomic.Int32
	go func() {
		for {
			c, err := trap.Accept()
			if err != nil {
				return
			}
			trapped.Add(1)
			c.Close()
		}
	}()
	stranger, err := trust.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}

	// a's trust list is in place before it starts, as for a daemon.
	cfg := host.Config{Name: "discovering-a", DataDir: t.TempDir()}
	a := peernettest.Node(t, cfg)
	peernettest.TrustEach(t, a, b)
	a.Close()

	cfg.Discovery = []discovery.Source{discovery.Static{
		{Peer: stranger.PeerID(), Addr: netip.MustParseAddrPort(trap.Addr().String()), Source: discovery.SourceStatic},
		{Peer: b.Identity(), Addr: netip.MustParseAddrPort(peernettest.Addr(b)), Source: discovery.SourceStatic},
	}}
	a = peernettest.Node(t, cfg)
	peernettest.Eventually(t, "a connects to the discovered peer", func() bool { return a.Connected(b.Identity()) })
	peers := a.Peers()
	if len(peers) != 1 || peers[0].ID != b.Identity() || peers[0].Source != discovery.SourceStatic {
		t.Fatalf("a's peers: %+v, want b found by a static hint", peers)
	}
	peernettest.Eventually(t, "b sees a", func() bool { return b.Connected(a.Identity()) })
	if n := trapped.Load(); n != 0 {
		t.Fatalf("node dialled an untrusted announcer %d times", n)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// hintFeed is a discovery source the test drives: every hint sent on it is
// reported.
type hintFeed chan discovery.Hint

func (f hintFeed) Run(ctx context.Context, found func(discovery.Hint)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case h := <-f:
			found(h)
		}
	}
}

// countingListener accepts TCP connections on loopback and counts them; if
// hold is set it keeps them open and silent, so a dial to it hangs in the
// handshake, else it closes them at once, so the handshake fails fast.
func countingListener(t *testing.T, hold bool) (netip.AddrPort, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	done := make(chan struct{})
	var held []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				break
			}
			accepted.Add(1)
			if hold {
				held = append(held, c)
			} else {
				c.Close()
			}
		}
		for _, c := range held {
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return netip.MustParseAddrPort(ln.Addr().String()), &accepted
}

// A hint that moves a disconnected peer to a new address is tried at once
// (no sooner than a second after the last dial, ReconnectMin being longer):
// it cuts short both a dial hanging at the old address and a long backoff
// after failures there. Without that, each case takes a minute.
func TestHintWithNewAddressRedialsAtOnce(t *testing.T) {
	tests := []struct {
		name string
		hold bool // the old address hangs the dial, rather than failing it
	}{
		{"dial in progress", true},
		{"waiting in backoff", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := peernettest.Node(t, host.Config{})
			feed := make(hintFeed)
			var log syncBuffer
			a := peernettest.Node(t, host.Config{
				Logger:           hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: &log}),
				Discovery:        []discovery.Source{feed},
				HandshakeTimeout: time.Minute,
				ReconnectMin:     time.Minute,
				ReconnectMax:     time.Minute,
			})
			peernettest.TrustEach(t, a, b)

			old, dials := countingListener(t, tt.hold)
			feed <- discovery.Hint{Peer: b.Identity(), Addr: old, Source: "test"}
			peernettest.Eventually(t, "a dials b's old address", func() bool { return dials.Load() > 0 })
			if !tt.hold {
				peernettest.Eventually(t, "a waits to redial", func() bool { return strings.Contains(log.String(), "redial failed") })
			}

			start := time.Now()
			feed <- discovery.Hint{Peer: b.Identity(), Addr: netip.MustParseAddrPort(peernettest.Addr(b)), Source: "test"}
			peernettest.Eventually(t, "a connects to b at its new address", func() bool { return a.Connected(b.Identity()) })
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("connected %v after the new address, want well within the minute of backoff or handshake timeout", took)
			}
			if p := a.Peers()[0]; p.Source != "test" {
				t.Errorf("a's peer: %+v, want source test", p)
			}
		})
	}
}

// Hints cannot make a node dial faster than ReconnectMin, however often a
// peer's address changes.
func TestHintsDoNotSpeedUpRedial(t *testing.T) {
	const reconnectMin = 100 * time.Millisecond
	b := peernettest.Node(t, host.Config{})
	feed := make(hintFeed)
	a := peernettest.Node(t, host.Config{Discovery: []discovery.Source{feed}, ReconnectMin: reconnectMin, ReconnectMax: time.Second})
	peernettest.TrustEach(t, a, b)

	x, xDials := countingListener(t, false)
	y, yDials := countingListener(t, false)
	start := time.Now()
	for i := 0; time.Since(start) < time.Second; i++ {
		addr := x
		if i%2 == 1 {
			addr = y
		}
		feed <- discovery.Hint{Peer: b.Identity(), Addr: addr, Source: "test"}
	}
	elapsed := time.Since(start)
	dials := xDials.Load() + yDials.Load()
	if limit := int32(elapsed/reconnectMin) + 2; dials > limit || dials == 0 {
		t.Errorf("%d dials in %v of address changes, want 1 to %d", dials, elapsed.Round(time.Millisecond), limit)
	}
}

// A hint for a peer that is connected, because it dialled us, is kept: it is
// where we redial the peer when that connection drops.
func TestHintWhileConnectedIsKeptForRedial(t *testing.T) {
	feed := make(hintFeed)
	a := peernettest.Node(t, host.Config{Discovery: []discovery.Source{feed}})
	b := peernettest.Node(t, host.Config{})
	peernettest.TrustEach(t, a, b)
	peernettest.Connect(t, b, a) // b dials: a knows only b's ephemeral port

	feed <- discovery.Hint{Peer: b.Identity(), Addr: netip.MustParseAddrPort(peernettest.Addr(b)), Source: "test"}
	peernettest.Eventually(t, "a records the hint", func() bool { return a.Peers()[0].Source == "test" })
	if !a.Connected(b.Identity()) {
		t.Fatal("the hint disturbed the connection")
	}

	// b drops the connection and stops redialling a: only a can restore it.
	if err := b.Untrust(a.Identity()); err != nil {
		t.Fatal(err)
	}
	peernettest.Eventually(t, "a sees b gone", func() bool { return !a.Connected(b.Identity()) })
	if err := b.Trust(a.Identity(), a.Name()); err != nil {
		t.Fatal(err)
	}
	peernettest.Eventually(t, "a redials b", func() bool { return a.Connected(b.Identity()) })
}
