package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"

	"github.com/peernet/peernet/testing/netns"
	"github.com/peernet/peernet/testing/poll"
	"github.com/peernet/peernet/trust"
)

func TestNewMDNS(t *testing.T) {
	self := testPeer(t, 1)
	tests := []struct {
		name    string
		cfg     MDNSConfig
		wantErr bool
	}{
		{"minimal", MDNSConfig{Self: self, Port: 7000}, false},
		{"everything set", MDNSConfig{Self: self, Port: 65535, Interfaces: []string{"eth0"}, AnnounceInterval: time.Second, QueryInterval: time.Hour, MaxTracked: 1}, false},
		{"no self", MDNSConfig{Port: 7000}, true},
		{"no port", MDNSConfig{Self: self}, true},
		{"port too large", MDNSConfig{Self: self, Port: 65536}, true},
		{"announce too often", MDNSConfig{Self: self, Port: 7000, AnnounceInterval: time.Millisecond}, true},
		{"announce too rarely", MDNSConfig{Self: self, Port: 7000, AnnounceInterval: time.Hour}, true},
		{"query too often", MDNSConfig{Self: self, Port: 7000, QueryInterval: 999 * time.Millisecond}, true},
		{"negative MaxTracked", MDNSConfig{Self: self, Port: 7000, MaxTracked: -1}, true},
		{"empty interface name", MDNSConfig{Self: self, Port: 7000, Interfaces: []string{""}}, true},
		{"addresses", MDNSConfig{Self: self, Port: 7000, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}}, false},
		{"unspecified address", MDNSConfig{Self: self, Port: 7000, Addrs: []netip.Addr{netip.IPv4Unspecified()}}, true},
		{"invalid address", MDNSConfig{Self: self, Port: 7000, Addrs: []netip.Addr{{}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := tt.cfg
			orig.Interfaces = slices.Clone(tt.cfg.Interfaces)
			m, err := NewMDNS(tt.cfg)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("NewMDNS = %v, want ErrInvalidConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewMDNS: %v", err)
			}
			if m.cfg.AnnounceInterval == 0 || m.cfg.QueryInterval == 0 || m.cfg.MaxTracked == 0 || m.log == nil {
				t.Errorf("defaults not applied: %+v", m.cfg)
			}
			if tt.cfg.AnnounceInterval != orig.AnnounceInterval || tt.cfg.MaxTracked != orig.MaxTracked ||
				!slices.Equal(tt.cfg.Interfaces, orig.Interfaces) {
				t.Error("NewMDNS modified the caller's config")
			}
		})
	}
}

// A node bound to one address announces only that one, so no peer dials
// an address where nobody listens.
func TestAnnounceable(t *testing.T) {
	link := []string{"10.0.0.2", "10.0.0.3", "fd77::2", "fe80::2"}
	tests := []struct {
		name  string
		addrs []string
		only  []string
		want  []string
	}{
		{"everything", link, nil, link},
		{"only the listen address", link, []string{"10.0.0.3"}, []string{"10.0.0.3"}},
		{"zones ignored", link, []string{"fe80::2%eth0"}, []string{"fe80::2"}},
		{"several, in link order", link, []string{"fd77::2", "10.0.0.2"}, []string{"10.0.0.2", "fd77::2"}},
		{"not on this link", link, []string{"192.0.2.1"}, nil},
		{"at most maxPeerAddrs", []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}, nil,
			[]string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}},
		{"the listen address beyond the first maxPeerAddrs", []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"},
			[]string{"10.0.0.5"}, []string{"10.0.0.5"}},
	}
	parse := func(ss []string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, a := range announceable(parse(tt.addrs), parse(tt.only)) {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("announceable = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUsableAddrs(t *testing.T) {
	eth := &link{name: "eth0"}
	lo := &link{name: "lo", loopback: true}
	src := netip.MustParseAddr("10.0.0.9")
	tests := []struct {
		name  string
		addrs []string
		l     *link
		src   netip.Addr
		want  []string
	}{
		{"kept as is", []string{"10.0.0.2", "fd77::2"}, eth, src, []string{"10.0.0.2", "fd77::2"}},
		{"link-local gets the zone", []string{"fe80::1"}, eth, src, []string{"fe80::1%eth0"}},
		{"loopback dropped off loopback", []string{"127.0.0.1", "::1", "10.0.0.2"}, eth, src, []string{"10.0.0.2"}},
		{"loopback kept on loopback", []string{"127.0.0.1"}, lo, src, []string{"127.0.0.1"}},
		{"source stands in", nil, eth, src, []string{"10.0.0.9"}},
		{"link-local source gets the zone", nil, eth, netip.MustParseAddr("fe80::9"), []string{"fe80::9%eth0"}},
		{"unusable source", nil, eth, netip.Addr{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in []netip.Addr
			for _, s := range tt.addrs {
				in = append(in, netip.MustParseAddr(s))
			}
			var got []string
			for _, a := range usableAddrs(in, tt.l, tt.src) {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("usableAddrs = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestMDNSRunOnce runs an MDNS restricted to an interface that does not
// exist, so it binds port 5353 but sends nothing, and checks that a second
// concurrent Run is refused and that Run returns, with its goroutines gone,
// when ctx is cancelled.
func TestMDNSRunOnce(t *testing.T) {
	m, err := NewMDNS(MDNSConfig{Self: testPeer(t, 1), Port: 7000, Interfaces: []string{"pn-none"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- m.Run(ctx, func(Hint) {}) }()
	deadline := time.Now().Add(10 * time.Second)
	for !m.running.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := m.Run(ctx, func(Hint) {}); !errors.Is(err, ErrRunning) && !errors.Is(err, ErrNoSocket) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
	cancel()
	select {
	case err := <-errc:
		if errors.Is(err, ErrNoSocket) {
			t.Skipf("skipping: cannot bind the mDNS port here: %v", err)
		}
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after ctx was cancelled")
	}
}

// loopbackEnv marks the re-run of TestMDNSLoopback inside a namespace.
const loopbackEnv = "PEERNET_DISCOVERY_LOOPBACK"

// TestMDNSLoopback runs two instances in one process on the loopback
// interface. Loopback usually has no multicast: then, as root, the test
// re-runs itself in a fresh network namespace whose loopback has multicast
// turned on (never touching the host's own); otherwise it skips.
func TestMDNSLoopback(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err == nil && lo.Flags&(net.FlagUp|net.FlagMulticast) == net.FlagUp|net.FlagMulticast {
		testLoopback(t)
		return
	}
	if os.Getenv(loopbackEnv) != "" {
		t.Fatal("lo has no multicast inside the test namespace")
	}
	if err := netns.Available(); err != nil {
		t.Skipf("skipping: lo has no multicast here, and %v", err)
	}
	h := netns.New(t, 1).Host(0)
	if out, err := h.Command(t.Context(), "ip", "link", "set", "lo", "multicast", "on").CombinedOutput(); err != nil {
		t.Fatalf("enabling multicast on lo in %s: %v: %s", h.Name, err, out)
	}
	if out, err := h.HelperCommand(t.Context(), "TestMDNSLoopback", loopbackEnv+"=1").CombinedOutput(); err != nil {
		t.Fatalf("TestMDNSLoopback in %s: %v\n%s", h.Name, err, out)
	}
}

func testLoopback(t *testing.T) {
	a, b := testPeer(t, 1), testPeer(t, 2)
	hints := make(chan Hint, 64)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 2)
	for i, id := range []trust.PeerID{a, b} {
		m, err := NewMDNS(MDNSConfig{Self: id, Port: 7000 + i, Interfaces: []string{"lo"}})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			done <- m.Run(ctx, func(h Hint) {
				select {
				case hints <- h:
				default:
				}
			})
		}()
	}
	defer func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}()
	want := map[trust.PeerID]uint16{a: 7000, b: 7001}
	timeout := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case h := <-hints:
			if port, ok := want[h.Peer]; ok && h.Addr.Port() == port && h.Addr.Addr().IsLoopback() {
				delete(want, h.Peer)
			}
		case <-timeout:
			t.Fatalf("no loopback hint for %d peers within 10s", len(want))
		}
	}
}

// wireEnv marks the re-run of TestMDNSWire inside a namespace.
const wireEnv = "PEERNET_DISCOVERY_WIRE"

// TestMDNSWire talks to a running MDNS on loopback as other programs do:
// a legacy unicast query (from an ephemeral port, RFC 6762 §6.7) gets a
// unicast answer with its id and question, TTLs of at most 10 s and no
// cache-flush bit; a response from another host claiming our instance name
// with another port is taken as a conflict, after which we stop answering.
// Like TestMDNSLoopback it runs in a namespace of its own when lo has no
// multicast.
func TestMDNSWire(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil || lo.Flags&(net.FlagUp|net.FlagMulticast) != net.FlagUp|net.FlagMulticast {
		if os.Getenv(wireEnv) != "" {
			t.Fatal("lo has no multicast inside the test namespace")
		}
		if err := netns.Available(); err != nil {
			t.Skipf("skipping: lo has no multicast here, and %v", err)
		}
		h := netns.New(t, 1).Host(0)
		if out, err := h.Command(t.Context(), "ip", "link", "set", "lo", "multicast", "on").CombinedOutput(); err != nil {
			t.Fatalf("enabling multicast on lo in %s: %v: %s", h.Name, err, out)
		}
		if out, err := h.HelperCommand(t.Context(), "TestMDNSWire", wireEnv+"=1").CombinedOutput(); err != nil {
			t.Fatalf("TestMDNSWire in %s: %v\n%s", h.Name, err, out)
		}
		return
	}

	self := testPeer(t, 1)
	var logs syncLog
	m, err := NewMDNS(MDNSConfig{Self: self, Port: 7000, Interfaces: []string{"lo"},
		Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, func(Hint) {}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	group := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: mdnsPort}
	query := new(dns.Msg).SetQuestion(instanceName(self), dns.TypeSRV)
	ask := func() *dns.Msg {
		if _, err := c.WriteTo(pack(t, query), group); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		buf := make([]byte, maxPacketSize)
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return nil
		}
		if from.(*net.UDPAddr).Port != mdnsPort {
			t.Fatalf("answer from %v, want port %d", from, mdnsPort)
		}
		var r dns.Msg
		if err := r.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		return &r
	}
	var r *dns.Msg
	deadline := time.Now().Add(10 * time.Second)
	for r == nil && time.Now().Before(deadline) {
		r = ask() // nil until probing is done
	}
	if r == nil {
		t.Fatalf("no answer to a legacy query within 10 s; log:\n%s", logs.String())
	}
	if r.Id != query.Id || !slices.Equal(r.Question, query.Question) || len(r.Answer) != 1 {
		t.Fatalf("answer %v, want id %#x, the question and one record", r, query.Id)
	}
	srv, ok := r.Answer[0].(*dns.SRV)
	if !ok || srv.Port != 7000 || srv.Hdr.Ttl > ttlLegacy || srv.Hdr.Class != dns.ClassINET {
		t.Errorf("answer record %v, want our SRV, TTL <= %d, class IN without cache flush", r.Answer[0], ttlLegacy)
	}

	// Another host claims our name: a response from port 5353 with
	// another port in our SRV record.
	claim, err := listenReuse("udp4", fmt.Sprintf("127.0.0.1:%d", mdnsPort))
	if err != nil {
		t.Fatal(err)
	}
	defer claim.Close()
	if _, err := claim.WriteTo(pack(t, buildResponse(self, 7999, []netip.Addr{netip.MustParseAddr("127.0.0.1")}, false)), group); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the conflict is noticed", 0, func() bool {
		return strings.Contains(logs.String(), "another mDNS responder claims our name")
	})
	if r := ask(); r != nil {
		t.Errorf("answered %v after giving up our name", r)
	}
}

// syncLog is a log sink safe for concurrent use.
type syncLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestAnswerRoute(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	qm := new(dns.Msg).SetQuestion(ServiceName, dns.TypePTR)
	qu := qm.Copy()
	qu.Question[0].Qclass |= unicastResp
	from := func(port uint16, dst netip.Addr) packet {
		return packet{src: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.9"), port), dst: dst}
	}
	unicastDst := netip.MustParseAddr("10.0.0.1")
	tests := []struct {
		name     string
		p        packet
		m        *dns.Msg
		lastSent time.Time
		want     int
	}{
		{"QM to the group", from(mdnsPort, group4), qm, now.Add(-time.Second), routeMulticast},
		{"QM to the IPv6 group", from(mdnsPort, group6), qm, time.Time{}, routeMulticast},
		{"QU, we multicast lately", from(mdnsPort, group4), qu, now.Add(-29 * time.Second), routeUnicast},
		{"QU, we did not multicast for a quarter TTL", from(mdnsPort, group4), qu, now.Add(-31 * time.Second), routeMulticast},
		{"QU, we never multicast", from(mdnsPort, group4), qu, time.Time{}, routeMulticast},
		{"sent to us by unicast", from(mdnsPort, unicastDst), qm, now, routeUnicast},
		{"legacy, to the group", from(40000, group4), qm, now, routeLegacy},
		{"legacy, by unicast", from(40000, unicastDst), qu, now, routeLegacy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := answerRoute(tt.p, tt.m, tt.lastSent, now); got != tt.want {
				t.Errorf("answerRoute = %d, want %d", got, tt.want)
			}
		})
	}
}
