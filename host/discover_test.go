package host_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
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
	peernettest.Eventually(t, "a adopts the proven address", func() bool {
		peers := a.Peers()
		return len(peers) == 1 && peers[0].ID == b.Identity() && peers[0].Source == discovery.SourceStatic
	})
	peernettest.Eventually(t, "b sees a", func() bool { return b.Connected(a.Identity()) })
	if n := trapped.Load(); n != 0 {
		t.Fatalf("node dialled an untrusted announcer %d times", n)
	}
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
			var log peernettest.Buffer
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
				peernettest.Eventually(t, "a waits to redial", func() bool { return strings.Contains(log.String(), "hinted address failed") })
			}

			start := time.Now()
			feed <- discovery.Hint{Peer: b.Identity(), Addr: netip.MustParseAddrPort(peernettest.Addr(b)), Source: "test"}
			peernettest.Eventually(t, "a connects to b at its new address", func() bool { return a.Connected(b.Identity()) })
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("connected %v after the new address, want well within the minute of backoff or handshake timeout", took)
			}
			peernettest.Eventually(t, "a adopts b's new address", func() bool { return a.Peers()[0].Source == "test" })
		})
	}
}

// However often an address is announced, it is dialled once per retry
// window (the first is 10 s), and a new address is dialled once.
func TestHintsDoNotDialRepeatedly(t *testing.T) {
	b := peernettest.Node(t, host.Config{})
	feed := make(hintFeed)
	a := peernettest.Node(t, host.Config{Discovery: []discovery.Source{feed}})
	peernettest.TrustEach(t, a, b)

	x, xDials := countingListener(t, false)
	y, yDials := countingListener(t, false)
	for i := 0; i < 200; i++ {
		addr := x
		if i%2 == 1 {
			addr = y
		}
		feed <- discovery.Hint{Peer: b.Identity(), Addr: addr, Source: "test"}
		if i == 100 {
			peernettest.Eventually(t, "a dials both addresses", func() bool { return xDials.Load() > 0 && yDials.Load() > 0 })
		}
	}
	if x, y := xDials.Load(), yDials.Load(); x != 1 || y != 1 {
		t.Errorf("dials to the two announced addresses: %d and %d, want 1 each", x, y)
	}
}

// A hint for a connected peer never changes the address the node knows for
// it, and a forged hint is not dialled while the peer is connected.
func TestHintNeverMovesConnectedPeer(t *testing.T) {
	feed := make(hintFeed)
	a := peernettest.Node(t, host.Config{Discovery: []discovery.Source{feed}})
	b := peernettest.Node(t, host.Config{})
	peernettest.TrustEach(t, a, b)
	peernettest.Connect(t, a, b)
	before := a.Peers()[0]

	trap, dials := countingListener(t, false)
	for range 20 {
		feed <- discovery.Hint{Peer: b.Identity(), Addr: trap, Source: "forger"}
	}
	// The node takes hints synchronously; an old node had moved b's address
	// by now, and a policy that dialled connected peers would dial at once.
	if got := a.Peers()[0]; got.Source != before.Source || !a.Connected(b.Identity()) {
		t.Errorf("after forged hints a's peer is %+v, was %+v", got, before)
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("a dialled the forged address %d times while connected", n)
	}
}

// An address that answers with another key is quarantined: announcing it
// again does not make the node dial it again.
func TestHintWrongKeyQuarantined(t *testing.T) {
	feed := make(hintFeed)
	var log peernettest.Buffer
	a := peernettest.Node(t, host.Config{
		Discovery: []discovery.Source{feed},
		Logger:    hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: &log}),
	})
	b := peernettest.Node(t, host.Config{})
	c := peernettest.Node(t, host.Config{}) // not b: the forged address
	peernettest.TrustEach(t, a, b)

	forged := netip.MustParseAddrPort(peernettest.Addr(c))
	feed <- discovery.Hint{Peer: b.Identity(), Addr: forged, Source: "forger"}
	const warning = "hinted address answered with another key"
	peernettest.Eventually(t, "a finds c's key at the hinted address", func() bool { return strings.Contains(log.String(), warning) })
	for range 50 {
		feed <- discovery.Hint{Peer: b.Identity(), Addr: forged, Source: "forger"}
	}
	// b's real address still gets through, and is dialled after the
	// forged repeats were taken.
	feed <- discovery.Hint{Peer: b.Identity(), Addr: netip.MustParseAddrPort(peernettest.Addr(b)), Source: "test"}
	peernettest.Eventually(t, "a connects to b", func() bool { return a.Connected(b.Identity()) })
	if n := strings.Count(log.String(), "dialling hinted address"); n != 2 {
		t.Errorf("a dialled hinted addresses %d times, want 2 (the forged one once, b once):\n%s", n, log.String())
	}
	if a.Connected(c.Identity()) {
		t.Error("a connected to c, which it does not trust")
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
