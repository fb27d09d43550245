package discovery

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/testing/netns"
	"github.com/peernet/peernet/trust"
)

// helperEnv carries a helperSpec (JSON) to TestHelperMDNS in a child process.
const helperEnv = "PEERNET_DISCOVERY_HELPER"

// helperSpec lists the MDNS instances one helper process runs.
type helperSpec struct {
	Nodes []helperNode `json:"nodes"`
}

type helperNode struct {
	Self trust.PeerID `json:"self"`
	Port int          `json:"port"`
}

// helperEvent is one line a helper prints: an instance started, or found a
// hint.
type helperEvent struct {
	Self trust.PeerID `json:"self"`
	Kind string       `json:"kind"` // "start" or "hint"
	Time time.Time    `json:"time"`
	Hint *Hint        `json:"hint,omitempty"`
}

// TestHelperMDNS is not a test: it is the body of the helper processes of
// TestMDNSAcrossNamespaces. It runs the instances of its spec on every
// multicast interface, prints their events as JSON lines on stdout, and
// stops them when stdin is closed.
func TestHelperMDNS(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("helper process for TestMDNSAcrossNamespaces")
	}
	var spec helperSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatalf("decoding %s: %v", helperEnv, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	emit := func(ev helperEvent) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(ev)
	}
	logger := hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Debug})
	var wg sync.WaitGroup
	for _, n := range spec.Nodes {
		m, err := NewMDNS(MDNSConfig{Self: n.Self, Port: n.Port, Logger: logger.Named(n.Self.Short())})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			emit(helperEvent{Self: n.Self, Kind: "start", Time: time.Now()})
			err := m.Run(ctx, func(h Hint) {
				emit(helperEvent{Self: n.Self, Kind: "hint", Time: time.Now(), Hint: &h})
			})
			if err != nil {
				t.Errorf("%s: Run: %v", n.Self.Short(), err)
			}
		})
	}
	wg.Wait()
}

// helperProc is a running helper process; its events arrive on events.
type helperProc struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	stderr bytes.Buffer
	done   chan struct{} // closed when stdout is drained
}

// startHelper runs the MDNS instances of spec in host h and feeds their
// events into events. Cleanup closes its stdin, which makes it say goodbye
// and exit, and reports a failed exit.
func startHelper(t *testing.T, h *netns.Host, spec helperSpec, events chan<- helperEvent) {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &helperProc{cmd: h.HelperCommand(ctx, "TestHelperMDNS", helperEnv+"="+string(raw)), done: make(chan struct{})}
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting helper in %s: %v", h.Name, err)
	}
	stop := make(chan struct{})
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev helperEvent
			if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Kind == "" {
				continue // go test's own output
			}
			select {
			case events <- ev:
			case <-stop:
			}
		}
	}()
	t.Cleanup(func() {
		defer cancel()
		p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("helper in %s did not exit within 10s of closing its stdin; killing it", h.Name)
			cancel()
		}
		close(stop)
		<-p.done
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("helper in %s: %v\n%s", h.Name, err, p.stderr.String())
		} else if testing.Verbose() {
			t.Logf("helper in %s log:\n%s", h.Name, p.stderr.String())
		}
	})
}

// TestMDNSAcrossNamespaces runs MDNS instances in three network namespaces
// on one bridge, two of them in the first namespace (two nodes on one host),
// and checks that every instance learns every other one's namespace
// addresses and port. The third namespace starts late, after the others
// have found each other, so it relies on answers to its queries.
func TestMDNSAcrossNamespaces(t *testing.T) {
	nw := netns.New(t, 3)
	_, ipv6Err := os.Stat("/proc/net/if_inet6")
	hasIPv6 := ipv6Err == nil

	type node struct {
		helperNode
		host *netns.Host
	}
	var nodes []node
	for i, hi := range []int{0, 0, 1, 2} {
		nodes = append(nodes, node{helperNode{Self: testPeer(t, byte(10+i)), Port: 7000 + i}, nw.Host(hi)})
	}
	spec := func(host int) helperSpec {
		var s helperSpec
		for _, n := range nodes {
			if n.host.Index == host {
				s.Nodes = append(s.Nodes, n.helperNode)
			}
		}
		return s
	}

	// want[observer][peer] lists the addresses observer must learn for peer.
	want := map[trust.PeerID]map[trust.PeerID][]netip.AddrPort{}
	for _, o := range nodes {
		want[o.Self] = map[trust.PeerID][]netip.AddrPort{}
		for _, p := range nodes {
			if p.Self == o.Self {
				continue
			}
			addrs := []netip.AddrPort{netip.AddrPortFrom(p.host.Addr, uint16(p.Port))}
			if hasIPv6 {
				addrs = append(addrs, netip.AddrPortFrom(p.host.Addr6, uint16(p.Port)))
			}
			want[o.Self][p.Self] = addrs
		}
	}
	started := map[trust.PeerID]time.Time{}
	firstHint := map[[2]trust.PeerID]time.Duration{}

	events := make(chan helperEvent, 256)
	// wait consumes events until every observer in obs has learned every
	// address of every peer, or the deadline passes.
	wait := func(obs []trust.PeerID, within time.Duration) {
		t.Helper()
		missing := func() []string {
			var out []string
			for _, o := range obs {
				for p, addrs := range want[o] {
					for _, a := range addrs {
						out = append(out, fmt.Sprintf("%s→%s@%s", o.Short(), p.Short(), a))
					}
				}
			}
			return out
		}
		deadline := time.After(within)
		for len(missing()) > 0 {
			select {
			case ev := <-events:
				if ev.Kind == "start" {
					started[ev.Self] = ev.Time
					continue
				}
				h := ev.Hint
				if h.Source != SourceMDNS {
					t.Errorf("%s got a hint with source %q, want %q", ev.Self.Short(), h.Source, SourceMDNS)
				}
				// Time to first sighting counts from when both were running.
				key := [2]trust.PeerID{ev.Self, h.Peer}
				from := started[ev.Self]
				if started[h.Peer].After(from) {
					from = started[h.Peer]
				}
				if _, ok := firstHint[key]; !ok && !from.IsZero() {
					firstHint[key] = h.Seen.Sub(from)
				}
				if addrs, ok := want[ev.Self][h.Peer]; ok {
					want[ev.Self][h.Peer] = deleteAddr(addrs, h.Addr)
					if len(want[ev.Self][h.Peer]) == 0 {
						delete(want[ev.Self], h.Peer)
					}
				}
			case <-deadline:
				t.Fatalf("after %v still missing hints (observer→peer@addr): %s", within, strings.Join(missing(), ", "))
			}
		}
	}

	startHelper(t, nw.Host(0), spec(0), events)
	startHelper(t, nw.Host(1), spec(1), events)
	early := []trust.PeerID{nodes[0].Self, nodes[1].Self, nodes[2].Self}
	// Until the late node starts, nobody can see it.
	late := nodes[3]
	lateAddrs := want[nodes[0].Self][late.Self]
	for _, o := range early {
		delete(want[o], late.Self)
	}
	wait(early, 15*time.Second)

	for _, o := range early {
		want[o][late.Self] = slices.Clone(lateAddrs)
	}
	startHelper(t, late.host, spec(2), events)
	wait(append(early, late.Self), 15*time.Second)

	var maxFirst time.Duration
	for k, d := range firstHint {
		maxFirst = max(maxFirst, d)
		t.Logf("%s first saw %s after %v", k[0].Short(), k[1].Short(), d.Round(time.Millisecond))
	}
	t.Logf("slowest first sighting: %v", maxFirst.Round(time.Millisecond))
}

func deleteAddr(list []netip.AddrPort, a netip.AddrPort) []netip.AddrPort {
	out := list[:0]
	for _, x := range list {
		if x != a {
			out = append(out, x)
		}
	}
	return out
}
