package host_test

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

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
	if !b.Connected(a.Identity()) {
		t.Fatal("b does not see a")
	}
	if n := trapped.Load(); n != 0 {
		t.Fatalf("node dialled an untrusted announcer %d times", n)
	}
}
