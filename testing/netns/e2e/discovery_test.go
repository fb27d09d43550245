package e2e

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/testing/netns"
	"github.com/peernet/peernet/testing/poll"
)

// Bounds the tests hold the nodes to. The figures they measure are logged.
const (
	// discoverLimit bounds the time from two nodes starting to their being
	// connected: mDNS announces at once and again after 1 s.
	discoverLimit = 5 * time.Second
	// downLimit bounds the time from a link going down to the peer-down
	// event: a connection silent for 3/2 ping intervals is closed (within
	// 7/4), with room for a loaded machine.
	downLimit = 4*pingInterval + 500*time.Millisecond
	// failFastLimit bounds a call to a disconnected peer: it fails without
	// waiting for an answer, so before its own timeout could expire.
	failFastLimit = host.DefaultCallTimeout
	// linkUpLimit bounds the time from a link coming back to the redial
	// that finds it: a dial sent while the link was down waits for the
	// kernel's next SYN retransmission (1 s, then 2 s later) until the 5 s
	// handshake timeout ends it, and the next one follows within
	// reconnect_max.
	linkUpLimit = 3*time.Second + reconnectMax
	// movedLimit bounds the time from a peer restarting at a new address to
	// the redial that finds it: its first announcement, or the next one a
	// second later, then a dial at once.
	movedLimit = time.Second + reconnectMax
)

// TestDiscovery runs three nodes in three namespaces. A and B trust each
// other with no address; C trusts A, but A does not trust C. It checks that
// A and B find each other by mDNS and connect on their own, that C is never
// connected to A, that bad mDNS packets hurt nobody, that a lost link is
// noticed within two ping intervals and calls then fail at once, that the
// nodes reconnect when the link is back, and that A finds B again when B
// restarts at a new address.
func TestDiscovery(t *testing.T) {
	bin := tools(t)
	nw := netns.New(t, 3)
	a := newNode(t, bin, "a", nw.Host(0))
	b := newNode(t, bin, "b", nw.Host(1))
	c := newNode(t, bin, "c", nw.Host(2))
	a.peers, b.peers, c.peers = []*node{b}, []*node{a}, []*node{a}
	b.echo = true
	launched := time.Now()
	a.start()
	b.start()
	c.start()

	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("discover and call", func(t *testing.T) {
		poll.Until(t, "a and b are connected", discoverLimit, func() bool {
			return a.connected(t, b) && b.connected(t, a)
		})
		ev := a.proc.log.find(message("peer up", "peer", b.id))
		if len(ev) == 0 {
			t.Fatal("a is connected to b but logged no peer up")
		}
		t.Logf("a and b connected %v after launch (%s by a)", ev[0].Time.Sub(launched).Round(time.Millisecond), ev[0].str("how"))
		// The side that was dialled learns where the other listens from
		// the other's next announcement.
		for _, pair := range [][2]*node{{a, b}, {b, a}} {
			poll.Until(t, pair[0].name+" has learned "+pair[1].name+"'s address from mdns", 5*time.Second, func() bool {
				p, _ := pair[0].peer(t, pair[1])
				return p.Source == "mdns"
			})
		}
		b.waitServing(t)
		out, took := a.cli(t, "call", "b", "echo", "hi")
		if out.code != 0 || out.stdout != "hi\n" {
			t.Fatalf("a: call b echo hi: exit %d, stdout %q, stderr %q", out.code, out.stdout, out.stderr)
		}
		t.Logf("call a→b echo across namespaces: %v (CLI process included)", took.Round(time.Millisecond))
	})

	step("untrusted peer stays out", func(t *testing.T) {
		// C has heard of A and dialled it, and A has refused it: wait for
		// both, so the checks below are not vacuous.
		poll.Until(t, "c has tried to dial a twice", 10*time.Second, func() bool {
			return len(c.proc.log.find(message("redial failed", "addr", a.listen.String()))) >= 2
		})
		poll.Until(t, "a has refused a handshake from c", 5*time.Second, func() bool {
			return len(a.proc.log.find(func(e logEntry) bool {
				return e.Message == "inbound handshake failed" && remoteIP(e) == c.listen.Addr()
			})) > 0
		})
		checkUntrusted(t, a, c)
	})

	step("garbage mDNS", func(t *testing.T) {
		before := len(a.proc.log.find(func(e logEntry) bool { return e.Message == "dropping mDNS packet" }))
		sent := sprayGarbage(t, nw.Host(2), 2000)
		poll.Until(t, "a has dropped some of the garbage", 5*time.Second, func() bool {
			return len(a.proc.log.find(func(e logEntry) bool { return e.Message == "dropping mDNS packet" })) > before
		})
		for _, n := range []*node{a, b, c} {
			n.alive()
		}
		out, _ := a.cli(t, "call", "b", "echo", "still here")
		if out.code != 0 || out.stdout != "still here\n" {
			t.Fatalf("a: call b after garbage: exit %d, stdout %q, stderr %q", out.code, out.stdout, out.stderr)
		}
		dropped := len(a.proc.log.find(func(e logEntry) bool { return e.Message == "dropping mDNS packet" })) - before
		t.Logf("sent %d bad packets; a logged %d as dropped; all three nodes still running and answering", sent, dropped)
	})

	// From here on B cannot open connections to A (A can to B, and mDNS is
	// untouched), so every reconnection below is A's own redial at work.
	blockDials(t, b, a)

	step("link down", func(t *testing.T) {
		nw.LinkDown(b.host.Index)
		down := time.Now()
		var ev logEntry
		poll.Until(t, "a logs b down", 2*downLimit, func() bool {
			evs := a.proc.log.since(down, message("peer down", "peer", b.id))
			if len(evs) > 0 {
				ev = evs[0]
			}
			return len(evs) > 0
		})
		took := ev.Time.Sub(down)
		t.Logf("a logged b down %v after the link went down (ping interval %v), reason %q", took.Round(time.Millisecond), pingInterval, ev.str("reason"))
		if took > downLimit {
			t.Errorf("peer down after %v, want within %v", took, downLimit)
		}
		b.waitServing(t)
		out, took := a.cli(t, "call", "b", "echo", "hi")
		if out.code != 1 || !strings.Contains(out.stderr, "not_connected") {
			t.Errorf("a: call b while b is down: exit %d, stderr %q; want exit 1, not connected", out.code, out.stderr)
		}
		t.Logf("call to the lost peer failed after %v (CLI process included)", took.Round(time.Millisecond))
		if took > failFastLimit {
			t.Errorf("call to a disconnected peer took %v, want under %v", took, failFastLimit)
		}
	})

	step("link up", func(t *testing.T) {
		nw.LinkUp(b.host.Index)
		up := time.Now()
		poll.Until(t, "a and b reconnect", 15*time.Second, func() bool { return a.connected(t, b) && b.connected(t, a) })
		ev := a.proc.log.since(up, message("peer up", "peer", b.id))
		if len(ev) == 0 || ev[0].str("how") != "dialed" {
			t.Fatalf("a is connected to b, but its peer-up events since the link came up are %v, want one dialled", ev)
		}
		took := ev[0].Time.Sub(up)
		t.Logf("a redialled b %v after the link came up (reconnect_max %v)", took.Round(time.Millisecond), reconnectMax)
		if took > linkUpLimit {
			t.Errorf("reconnected %v after the link came up, want within %v", took, linkUpLimit)
		}
	})

	step("restart at a new address", func(t *testing.T) {
		stopped := time.Now()
		b.stop(t)
		poll.Until(t, "a logs b down", 5*time.Second, func() bool {
			return len(a.proc.log.since(stopped, message("peer down", "peer", b.id))) > 0
		})
		old, moved := b.listen, netip.AddrFrom4([4]byte{10, 77, 0, 102})
		ipAddr(t, b.host, "del", netip.PrefixFrom(old.Addr(), netns.Prefix4.Bits()))
		removed := time.Now()
		ipAddr(t, b.host, "add", netip.PrefixFrom(moved, netns.Prefix4.Bits()))
		b.listen = netip.AddrPortFrom(moved, listenPort)
		// A keeps redialling the old address, where a dial now hangs until
		// the handshake timeout instead of being refused. Restart B while
		// such a dial is in progress: A must drop it for the new address.
		poll.Until(t, "a redials b's old address", 5*time.Second, func() bool {
			return len(a.proc.log.since(removed, message("redialling", "addr", old.String()))) > 0
		})

		b.start()
		started := time.Now()
		poll.Until(t, "a and b reconnect", 15*time.Second, func() bool { return a.connected(t, b) && b.connected(t, a) })
		ev := a.proc.log.since(started, message("peer up", "peer", b.id))
		if len(ev) == 0 || ev[0].str("how") != "dialed" {
			t.Fatalf("a is connected to b, but its peer-up events since b restarted are %v, want one dialled", ev)
		}
		t.Logf("a redialled b at its new address %v after b restarted (remote %v)", ev[0].Time.Sub(started).Round(time.Millisecond), ev[0].Fields["remote"])
		if len(a.proc.log.since(removed, message("peer has a new address; abandoning the dial to its old one", "addr", old.String()))) == 0 {
			t.Error("a did not abandon its dial to b's old address")
		}
		if took := ev[0].Time.Sub(started); took > movedLimit {
			t.Errorf("reconnected %v after b restarted, want within %v", took, movedLimit)
		}
		if ip := remoteIP(ev[0]); ip != moved {
			t.Errorf("a's connection to b goes to %v, want %v", ip, moved)
		}
		if p, _ := a.peer(t, b); p.Source != "mdns" {
			t.Errorf("a says it learned b's address from %q, want mdns", p.Source)
		}
		b.waitServing(t)
		out, _ := a.cli(t, "call", "b", "echo", "moved")
		if out.code != 0 || out.stdout != "moved\n" {
			t.Fatalf("a: call b after the move: exit %d, stdout %q, stderr %q", out.code, out.stdout, out.stderr)
		}
	})

	// Whatever happened on the way, C never got in.
	checkUntrusted(t, a, c)
}

// checkUntrusted checks that stranger, which trusts a, was never connected
// to a, which does not trust it: a lists no such peer and logged no
// connection with it nor any dial to it; stranger sees a as down and logged
// no connection at all.
func checkUntrusted(t *testing.T, a, stranger *node) {
	t.Helper()
	for _, p := range a.peerList(t) {
		if p.ID == stranger.id {
			t.Errorf("a lists untrusted %s: %+v", stranger.name, p)
		}
	}
	if p, ok := stranger.peer(t, a); !ok || p.Connected {
		t.Errorf("%s's view of a: %+v (listed %v), want listed and not connected", stranger.name, p, ok)
	}
	for _, e := range a.proc.log.find(func(e logEntry) bool {
		return e.Message == "peer up" && e.str("peer") == stranger.id ||
			strings.HasPrefix(e.str("addr"), stranger.listen.Addr().String()+":") ||
			strings.Contains(e.str("error"), stranger.listen.String())
	}) {
		t.Errorf("a's log shows a connection with or a dial to %s: %+v", stranger.name, e.Fields)
	}
	for _, e := range stranger.proc.log.find(func(e logEntry) bool {
		return e.Message == "peer up" || remoteIP(e) == a.listen.Addr()
	}) {
		t.Errorf("%s's log shows a connection or an inbound dial from a: %+v", stranger.name, e.Fields)
	}
}

// blockDials stops from opening TCP connections to to's listen address,
// with a policy route in from's namespace that makes it unreachable for
// packets to that port only. Connections to opens to from still work (their
// packets from from go to to's ephemeral port), and so does mDNS.
func blockDials(t testing.TB, from, to *node) {
	t.Helper()
	for _, args := range [][]string{
		{"route", "add", "unreachable", to.listen.Addr().String(), "table", "100"},
		{"rule", "add", "to", to.listen.Addr().String(), "ipproto", "tcp", "dport", fmt.Sprint(to.listen.Port()), "lookup", "100", "pref", "100"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", from.host.Name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v in %s: %v: %s", args, from.host.Name, err, out)
		}
	}
}

// remoteIP returns the IP of the log entry's "remote" field (a TCP address
// as go-hclog writes it), or the zero Addr.
func remoteIP(e logEntry) netip.Addr {
	r, _ := e.Fields["remote"].(map[string]any)
	s, _ := r["IP"].(string)
	ip, _ := netip.ParseAddr(s)
	return ip
}

// ipAddr adds or deletes an address on h's interface.
func ipAddr(t testing.TB, h *netns.Host, op string, p netip.Prefix) {
	t.Helper()
	if out, err := exec.Command("ip", "-n", h.Name, "addr", op, p.String(), "dev", netns.Iface).CombinedOutput(); err != nil {
		t.Fatalf("ip addr %s %v in %s: %v: %s", op, p, h.Name, err, out)
	}
}

// TestStartToConnected measures, three times, the time from launching two
// nodes that trust each other, with no address, to their being connected:
// once on their first start, then again after restarting both with their
// trust lists on disk. It also counts the announcements of each other the
// nodes dropped because they did not trust the announcer yet: on a first
// start the daemon trusts the configured peers only after discovery has
// started.
func TestStartToConnected(t *testing.T) {
	bin := tools(t)
	nw := netns.New(t, 2)
	measure := func(t *testing.T, a, b *node) (time.Duration, int) {
		t.Helper()
		launched := time.Now()
		a.start()
		b.start()
		poll.Until(t, "a and b are connected", discoverLimit, func() bool {
			return len(a.proc.log.find(message("peer up", "peer", b.id))) > 0 &&
				len(b.proc.log.find(message("peer up", "peer", a.id))) > 0
		})
		at := a.proc.log.find(message("peer up", "peer", b.id))[0].Time
		if bt := b.proc.log.find(message("peer up", "peer", a.id))[0].Time; bt.After(at) {
			at = bt
		}
		if !a.connected(t, b) || !b.connected(t, a) {
			t.Fatal("both logged peer up, but the CLI does not show them connected")
		}
		dropped := len(a.proc.log.find(message("ignoring announcement", "peer", b.id))) +
			len(b.proc.log.find(message("ignoring announcement", "peer", a.id)))
		a.stop(t)
		b.stop(t)
		return at.Sub(launched), dropped
	}
	for i := range 3 {
		a := newNode(t, bin, "a", nw.Host(0))
		b := newNode(t, bin, "b", nw.Host(1))
		a.peers, b.peers = []*node{b}, []*node{a}
		first, dropped := measure(t, a, b)
		again, droppedAgain := measure(t, a, b)
		t.Logf("run %d: connected %v after launch on first start (%d announcements dropped as untrusted), %v after restart (%d dropped)",
			i+1, first.Round(time.Millisecond), dropped, again.Round(time.Millisecond), droppedAgain)
	}
}
