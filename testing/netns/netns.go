// Package netns implements a test harness that builds a small, private
// network out of Linux network namespaces.
//
// New creates one namespace per host plus one more that holds a bridge; each
// host namespace is wired to the bridge by a veth pair. Nothing is created in
// the caller's own network namespace: the bridge and the bridge-side veth ends
// live in the dedicated bridge namespace, the host-side ends in the host
// namespaces, so interface names only need to be unique inside those. Host i
// gets 10.77.0.(i+1)/24 and fd77::(i+1)/64 on interface Iface, with multicast
// enabled and IPv6 duplicate address detection off so addresses are usable at
// once. The bridge does no multicast snooping: every multicast frame reaches
// every host, as on a plain switch.
//
// It needs root and the iproute2 `ip` command; without them New skips the test
// with a message saying what is missing. Everything is deleted in t.Cleanup
// (deleting a namespace deletes the veth ends inside it).
//
// To run Go code inside a host, re-exec the test binary there with
// Host.HelperCommand and let a test function that checks an environment
// variable do the work (the helper-process pattern).
package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// MaxHosts is the most hosts one Net can have: host addresses are
// 10.77.0.1 to 10.77.0.253 within 10.77.0.0/24.
const MaxHosts = 253

// Iface is the name of each host's interface to the bridge.
const Iface = "pn0"

// Addressing inside every Net; the prefixes never leave its namespaces.
var (
	// Prefix4 is the IPv4 subnet of every Net.
	Prefix4 = netip.MustParsePrefix("10.77.0.0/24")
	// Prefix6 is the IPv6 unique-local subnet of every Net.
	Prefix6 = netip.MustParsePrefix("fd77::/64")
)

const bridgeName = "br0"

// Net is a set of hosts joined by one bridge. Its methods must be called from
// the test's goroutine (they call t.Fatal on failure).
type Net struct {
	t        testing.TB
	bridgeNS string
	hosts    []*Host
}

// Host is one network namespace with one interface to the bridge.
type Host struct {
	// Name is the namespace's name, as `ip netns` knows it.
	Name string
	// Index is the host's position in its Net.
	Index int
	// Addr is the host's IPv4 address on Iface.
	Addr netip.Addr
	// Addr6 is the host's IPv6 unique-local address on Iface.
	Addr6 netip.Addr

	bridgePort string // the veth end in the bridge namespace
}

// Available reports why netns tests cannot run here (not root, or no `ip`
// command), or nil if they can.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netns: needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("netns: no `ip` command in PATH; install iproute2")
	}
	return nil
}

// New builds a network of n hosts (1 ≤ n ≤ MaxHosts) and registers its
// deletion with t.Cleanup. It skips the test if Available reports a problem,
// and fails it if building the network fails. Names carry a random suffix so
// concurrent tests and leftovers of crashed runs never collide.
func New(t testing.TB, n int) *Net {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	if n < 1 || n > MaxHosts {
		t.Fatalf("netns: %d hosts, want 1 to %d", n, MaxHosts)
	}
	var suffix [3]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		t.Fatalf("netns: generating a name: %v", err)
	}
	prefix := "pn" + hex.EncodeToString(suffix[:])
	nw := &Net{t: t, bridgeNS: prefix + "-br"}

	nw.addNamespace(nw.bridgeNS)
	nw.ip("-n", nw.bridgeNS, "link", "add", bridgeName, "type", "bridge", "mcast_snooping", "0")
	nw.ip("-n", nw.bridgeNS, "link", "set", bridgeName, "up")

	for i := range n {
		h := &Host{
			Name:       fmt.Sprintf("%s-%d", prefix, i),
			Index:      i,
			Addr:       netip.AddrFrom4([4]byte{10, 77, 0, byte(i + 1)}),
			Addr6:      netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x77, 15: byte(i + 1)}),
			bridgePort: fmt.Sprintf("h%d", i),
		}
		nw.addNamespace(h.Name)
		// New interfaces copy "default"; with DAD off, link-local and
		// unique-local addresses are usable as soon as the link is up.
		nw.run("ip", "netns", "exec", h.Name, "sh", "-c",
			"echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad && echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad")
		nw.ip("-n", nw.bridgeNS, "link", "add", h.bridgePort, "type", "veth", "peer", "name", Iface, "netns", h.Name)
		nw.ip("-n", nw.bridgeNS, "link", "set", h.bridgePort, "master", bridgeName, "up")
		nw.ip("-n", h.Name, "addr", "add", netip.PrefixFrom(h.Addr, Prefix4.Bits()).String(), "dev", Iface)
		nw.ip("-n", h.Name, "addr", "add", netip.PrefixFrom(h.Addr6, Prefix6.Bits()).String(), "dev", Iface, "nodad")
		nw.ip("-n", h.Name, "link", "set", Iface, "multicast", "on", "up")
		nw.hosts = append(nw.hosts, h)
	}
	return nw
}

// Len returns the number of hosts.
func (n *Net) Len() int { return len(n.hosts) }

// Host returns host i; it panics if i is out of range.
func (n *Net) Host(i int) *Host { return n.hosts[i] }

// LinkDown takes host i's link down at the bridge, like pulling its cable:
// the host's interface stays configured but loses carrier.
func (n *Net) LinkDown(i int) {
	n.t.Helper()
	n.ip("-n", n.bridgeNS, "link", "set", n.hosts[i].bridgePort, "down")
}

// LinkUp reverses LinkDown.
func (n *Net) LinkUp(i int) {
	n.t.Helper()
	n.ip("-n", n.bridgeNS, "link", "set", n.hosts[i].bridgePort, "up")
}

// Command returns a command that runs name with args inside the host's
// namespace (through `ip netns exec`). The caller starts and waits for it;
// ctx kills it as in exec.CommandContext.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// HelperCommand returns a command that re-runs the current test binary
// inside the host's namespace with only the test named test selected, and
// with env ("KEY=value") added to this process's environment. The named test
// should do nothing unless it finds a variable from env.
func (h *Host) HelperCommand(ctx context.Context, test string, env ...string) *exec.Cmd {
	cmd := h.Command(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

func (n *Net) addNamespace(name string) {
	n.t.Helper()
	n.ip("netns", "add", name)
	n.t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			n.t.Errorf("netns: deleting namespace %s: %v: %s", name, err, strings.TrimSpace(string(out)))
		}
	})
	n.ip("-n", name, "link", "set", "lo", "up")
}

func (n *Net) ip(args ...string) {
	n.t.Helper()
	n.run("ip", args...)
}

func (n *Net) run(name string, args ...string) {
	n.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("netns: %s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}
