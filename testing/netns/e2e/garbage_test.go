package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/peernet/peernet/testing/netns"
	"github.com/peernet/peernet/trust"
)

// garbageEnv selects TestHelperGarbage in a re-run of the test binary; its
// value is the number of packets to send to each mDNS group.
const garbageEnv = "PEERNET_E2E_GARBAGE"

// TestHelperGarbage is not a test: it is the body of the helper process
// that sprays the mDNS groups of its namespace with bad packets. It prints
// "sent N" on success.
func TestHelperGarbage(t *testing.T) {
	raw := os.Getenv(garbageEnv)
	if raw == "" {
		t.Skip("helper process for TestDiscovery")
	}
	var count int
	if _, err := fmt.Sscan(raw, &count); err != nil {
		t.Fatalf("%s=%q: %v", garbageEnv, raw, err)
	}
	ifi, err := net.InterfaceByName(netns.Iface)
	if err != nil {
		t.Fatal(err)
	}
	packets := garbage(t, count)

	c4, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	p4 := ipv4.NewPacketConn(c4)
	if err := p4.SetMulticastInterface(ifi); err != nil {
		t.Fatal(err)
	}
	c6, err := net.ListenPacket("udp6", "[::]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c6.Close()
	p6 := ipv6.NewPacketConn(c6)
	if err := p6.SetMulticastInterface(ifi); err != nil {
		t.Fatal(err)
	}
	group4 := &net.UDPAddr{IP: net.ParseIP("224.0.0.251"), Port: 5353}
	group6 := &net.UDPAddr{IP: net.ParseIP("ff02::fb"), Port: 5353, Zone: ifi.Name}
	sent := 0
	for _, p := range packets {
		// Packets too large for one datagram fail to send; that is fine.
		if _, err := p4.WriteTo(p, nil, group4); err == nil {
			sent++
		}
		if _, err := p6.WriteTo(p, nil, group6); err == nil {
			sent++
		}
	}
	fmt.Printf("sent %d\n", sent)
}

// garbage returns count bad mDNS packets: random bytes of many sizes,
// truncated and bit-flipped copies of a real announcement (of a stranger's
// PeerID), messages whose counts lie, a compression-pointer loop, and
// packets over the 9000-byte limit. The sequence is the same on every run.
func garbage(t testing.TB, count int) [][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	stranger, err := trust.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	ann := announcement(t, stranger.PeerID().String())
	out := [][]byte{
		{},
		{0},
		make([]byte, 11), // shorter than a header
		// A header claiming 65535 records of each kind, and nothing else.
		{0, 0, 0x84, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		// A response whose question name points at itself.
		{0, 0, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 12, 0, 1},
		make([]byte, 9001),
		make([]byte, 60000),
		[]byte(strings.Repeat("\x3f", 9000)),
	}
	for i := range len(ann) {
		out = append(out, ann[:i]) // every truncation
	}
	for len(out) < count {
		switch rng.IntN(2) {
		case 0:
			p := make([]byte, rng.IntN(1500))
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			out = append(out, p)
		case 1:
			p := slices.Clone(ann)
			for range 1 + rng.IntN(8) {
				p[rng.IntN(len(p))] ^= 1 << rng.IntN(8)
			}
			out = append(out, p)
		}
	}
	return out[:max(count, 0)]
}

// announcement returns an mDNS response laid out as PeerNet announces a
// node named id (see package discovery), on an address no one holds.
func announcement(t testing.TB, id string) []byte {
	t.Helper()
	const service = "_peernet._tcp.local."
	inst, host := id+"."+service, id+".local."
	hdr := func(name string, typ uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: 120}
	}
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}, Compress: true}
	m.Answer = []dns.RR{
		&dns.PTR{Hdr: hdr(service, dns.TypePTR), Ptr: inst},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV), Port: 4040, Target: host},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT), Txt: []string{"v=1", "id=" + id}},
		&dns.A{Hdr: hdr(host, dns.TypeA), A: net.ParseIP("10.77.0.250")},
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sprayGarbage runs TestHelperGarbage in h and returns how many packets it
// sent.
func sprayGarbage(t testing.TB, h *netns.Host, count int) int {
	t.Helper()
	out, err := h.HelperCommand(context.Background(), "TestHelperGarbage", fmt.Sprintf("%s=%d", garbageEnv, count)).CombinedOutput()
	if err != nil {
		t.Fatalf("garbage helper in %s: %v\n%s", h.Name, err, out)
	}
	var sent int
	for _, line := range strings.Split(string(out), "\n") {
		if _, err := fmt.Sscanf(line, "sent %d", &sent); err == nil {
			return sent
		}
	}
	t.Fatalf("garbage helper in %s printed no count:\n%s", h.Name, out)
	return 0
}
