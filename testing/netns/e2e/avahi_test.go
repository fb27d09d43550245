package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/peernet/peernet/testing/netns"
	"github.com/peernet/peernet/testing/poll"
	"github.com/peernet/peernet/trust"
)

// forgedWindow is how long TestAvahi counts the dials that one forged
// announcement causes, and forgedBudget the most it may cause (the
// target in docs/benchmarks.md). With -short the test watches 15 s, in
// which the node's policy allows 2 dials (at once, then 10 s later).
const (
	forgedWindow      = 60 * time.Second
	forgedBudget      = 3
	forgedWindowShort = 15 * time.Second
	forgedBudgetShort = 2
	forgedPort        = 4242
)

// TestAvahi checks PeerNet's mDNS against avahi, the responder of most
// Linux systems, running in a namespace of its own (host 1) with a private
// D-Bus. Node A (host 0) runs PeerNet's mDNS; node B (host 1) runs without
// it, announced by avahi-publish instead; host 2 holds a trap that counts
// TCP connections, at the address of a forged announcement. It checks that
// avahi-browse -a lists A's service with its TXT record, that avahi-resolve
// resolves A's host name, that A finds and connects to B from avahi's
// announcement, that a legacy unicast query to the mDNS group gets a unicast
// answer from A with its id and question, and so does dig asking A, that the forged announcement (a PeerID A trusts,
// at the trap's address) costs at most forgedBudget dials in forgedWindow,
// that A drops the forged hint when avahi says goodbye, and that avahi
// logs no complaint about A's packets.
func TestAvahi(t *testing.T) {
	bin := tools(t)
	for _, p := range []string{"avahi-daemon", "avahi-browse", "avahi-publish", "avahi-resolve", "dbus-daemon", "dig"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("skipping: %s not installed (Debian packages avahi-daemon, avahi-utils, dbus, dnsutils)", p)
		}
	}
	nw := netns.New(t, 3)
	av := startAvahi(t, nw.Host(1))

	absent, err := trust.GenerateIdentity() // trusted by A, never running
	if err != nil {
		t.Fatal(err)
	}
	c := &node{name: "c", id: absent.PeerID().String()}
	a := newNode(t, bin, "a", nw.Host(0))
	b := newNode(t, bin, "b", nw.Host(1))
	b.noMDNS = true
	a.peers, b.peers = []*node{b, c}, []*node{a}
	trap := startTrap(t, nw.Host(2), net.JoinHostPort(nw.Host(2).Addr.String(), fmt.Sprint(forgedPort)))
	a.start()
	b.start()

	t.Run("avahi-browse lists A", func(t *testing.T) {
		want := fmt.Sprintf(`"id=%s"`, a.id)
		var line string
		poll.Until(t, "avahi-browse lists a's service with its TXT record", 20*time.Second, func() bool {
			out, stderr := av.run(t, "avahi-browse", "-a", "-r", "-t", "-p")
			if stderr != "" {
				t.Errorf("avahi-browse complained: %s", stderr)
			}
			for _, l := range strings.Split(out, "\n") {
				f := strings.Split(l, ";")
				if len(f) >= 10 && f[0] == "=" && f[2] == "IPv4" && f[3] == a.id && f[4] == "_peernet._tcp" {
					line = l
					return f[7] == a.listen.Addr().String() && f[8] == fmt.Sprint(a.listen.Port()) &&
						strings.Contains(f[9], want) && strings.Contains(f[9], `"v=1"`)
				}
			}
			return false
		})
		t.Logf("avahi-browse: %s", line)
	})

	t.Run("avahi-resolve resolves A's host name", func(t *testing.T) {
		poll.Until(t, "avahi-resolve finds a", 10*time.Second, func() bool {
			out, _ := av.run(t, "avahi-resolve", "-4", "-n", a.id+".local")
			f := strings.Fields(out)
			return len(f) == 2 && f[0] == a.id+".local" && f[1] == a.listen.Addr().String()
		})
	})

	// The forged announcement now (nothing of _peernet._tcp was published
	// by avahi before, so avahi-browse above had to enumerate A's service
	// type from A): its dials are counted while the other checks run.
	published := time.Now()
	stopForgedAddr := av.publish(t, "-a", "-R", "forged.local", nw.Host(2).Addr.String())
	stopForged := av.publish(t, "-s", "-H", "forged.local", c.id, "_peernet._tcp", fmt.Sprint(forgedPort), "v=1", "id="+c.id)
	first := trap.waitFirst(t, 20*time.Second)
	t.Logf("forged announcement: first dial %v after it was published", first.Sub(published).Round(time.Millisecond))

	t.Run("A finds B from avahi's announcement", func(t *testing.T) {
		stop := av.publish(t, "-s", b.id, "_peernet._tcp", fmt.Sprint(b.listen.Port()), "v=1", "id="+b.id)
		defer stop()
		took := poll.Until(t, "a and b are connected", 20*time.Second, func() bool { return a.connected(t, b) && b.connected(t, a) })
		if p, _ := a.peer(t, b); p.Source != "mdns" {
			t.Errorf("a learned b's address from %q, want mdns", p.Source)
		}
		t.Logf("a connected to b %v after avahi-publish", took.Round(time.Millisecond))
	})

	t.Run("legacy unicast query gets a unicast answer", func(t *testing.T) {
		name := a.id + "._peernet._tcp.local."
		// A query to the group from an ephemeral port (RFC 6762 §6.7): the
		// answer comes by unicast from A's address, with the query's id and
		// question. dig cannot show this one (it connects its socket to the
		// group and so drops any reply, avahi's too); the helper can.
		nw.Host(2).Command(context.Background(), "ip", "route", "add", "224.0.0.0/4", "dev", netns.Iface).Run()
		var got legacyReply
		poll.Until(t, "a answers a legacy query to the group", 20*time.Second, func() bool {
			got = legacyQuery(t, nw.Host(2), name)
			return got.From == netip.AddrPortFrom(a.listen.Addr(), 5353) && got.Answer != ""
		})
		if !got.IDMatch || got.Question != name+" SRV" || !strings.Contains(got.Answer, fmt.Sprintf("SRV\t0 0 %d %s.local.", a.listen.Port(), a.id)) {
			t.Errorf("answer to the legacy query: %+v", got)
		}
		if got.MaxTTL > 10 || got.CacheFlush {
			t.Errorf("legacy answer has TTL up to %d and cache-flush %v; want TTL <= 10 and no cache-flush bit", got.MaxTTL, got.CacheFlush)
		}

		// dig, asking A's address directly: dig itself checks that the id
		// and question match.
		var out string
		defer func() {
			if t.Failed() {
				t.Logf("dig's last output:\n%s", out)
			}
		}()
		poll.Until(t, "dig gets a's SRV record", 20*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			raw, _ := nw.Host(2).Command(ctx, "dig", "-p", "5353", "@"+a.listen.Addr().String(), name, "SRV", "+time=2", "+tries=1").CombinedOutput()
			out = string(raw)
			flat := strings.Join(strings.Fields(out), " ")
			return strings.Contains(flat, "status: NOERROR") && strings.Contains(flat, ";; ANSWER SECTION:") &&
				strings.Contains(flat, fmt.Sprintf("IN SRV 0 0 %d %s.local.", a.listen.Port(), a.id))
		})
		t.Logf("dig:\n%s", out)
	})

	t.Run("a forged announcement costs a bounded number of dials", func(t *testing.T) {
		window, budget := forgedWindow, forgedBudget
		if testing.Short() {
			window, budget = forgedWindowShort, forgedBudgetShort
		}
		// Wait out the window since the first dial, then count.
		if d := time.Until(first.Add(window)); d > 0 {
			time.Sleep(d)
		}
		dials := trap.before(first.Add(window))
		var at []string
		for _, d := range dials {
			at = append(at, d.Sub(first).Round(100*time.Millisecond).String())
		}
		t.Logf("forged announcement: %d dials in %v, at %v after the first (budget %d)", len(dials), window, at, budget)
		if len(dials) > budget {
			t.Errorf("%d dials in %v, budget %d", len(dials), window, budget)
		}
		if a.connected(t, c) {
			t.Error("a is connected to the forged peer")
		}
	})

	t.Run("goodbye drops the forged hint", func(t *testing.T) {
		stopForged()
		stopForgedAddr()
		poll.Until(t, "a drops the hint on avahi's goodbye", 10*time.Second, func() bool {
			return len(a.proc.log.find(func(e logEntry) bool {
				p := e.str("peer")
				return e.Message == "peer said goodbye; dropping its hints" && p != "" && strings.HasPrefix(c.id, p)
			})) > 0
		})
	})

	if complaints := av.complaints(); len(complaints) > 0 {
		t.Errorf("avahi-daemon complained:\n%s", strings.Join(complaints, "\n"))
	}
}

// avahi is an avahi-daemon running in one namespace, with a private
// dbus-daemon as its system bus.
type avahi struct {
	host *netns.Host
	dir  string
	bus  string // D-Bus address
	log  *logSink
}

// startAvahi starts dbus-daemon and avahi-daemon in h and stops them in
// t.Cleanup. avahi-daemon runs as root (--no-drop-root --no-chroot), on a
// private /run (it keeps its pid file there), announcing only on
// netns.Iface, under the host name "avahihost".
func startAvahi(t *testing.T, h *netns.Host) *avahi {
	t.Helper()
	dir := t.TempDir()
	av := &avahi{host: h, dir: dir, bus: "unix:path=" + filepath.Join(dir, "bus")}
	busConf := `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>` + av.bus + `</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/>
  </policy>
</busconfig>
`
	avahiConf := `[server]
host-name=avahihost
allow-interfaces=` + netns.Iface + `
use-ipv4=yes
use-ipv6=yes
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
`
	for name, body := range map[string]string{"bus.conf": busConf, "avahi-daemon.conf": avahiConf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	dbus := h.Command(context.Background(), "dbus-daemon", "--config-file="+filepath.Join(dir, "bus.conf"), "--nofork", "--print-address")
	stdout, err := dbus.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	dbus.Stderr = &strings.Builder{}
	if err := dbus.Start(); err != nil {
		t.Fatalf("starting dbus-daemon: %v", err)
	}
	t.Cleanup(func() { stopProcess(t, dbus) })
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatalf("dbus-daemon did not start: %v: %s", err, dbus.Stderr)
	}

	f, err := os.Create(filepath.Join(dir, "avahi-daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	av.log = newLogSink(f)
	// `ip netns exec` gives the command a mount namespace of its own, so
	// the tmpfs on /run is seen by this avahi-daemon alone.
	daemon := h.Command(context.Background(), "sh", "-c",
		`mount -t tmpfs tmpfs /run && exec avahi-daemon --no-drop-root --no-chroot --no-rlimits -f "$1"`,
		"sh", filepath.Join(dir, "avahi-daemon.conf"))
	daemon.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+av.bus)
	daemon.Stdout, daemon.Stderr = av.log, av.log
	if err := daemon.Start(); err != nil {
		t.Fatalf("starting avahi-daemon: %v", err)
	}
	t.Cleanup(func() {
		stopProcess(t, daemon)
		f.Close()
		if t.Failed() {
			t.Logf("avahi-daemon log:\n%s", av.log.tail(60))
		}
	})
	poll.Until(t, "avahi-daemon is up", 10*time.Second, func() bool {
		return strings.Contains(av.log.tail(1000), "Server startup complete")
	})
	return av
}

// run runs an avahi client in the daemon's namespace and returns its
// standard output and error.
func (av *avahi) run(t testing.TB, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := av.host.Command(ctx, name, args...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+av.bus)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.Run()
	return o.String(), e.String()
}

// publish runs avahi-publish with args until the returned stop is called
// (or the test ends); stop withdraws the records, which makes avahi send
// its goodbye, and is safe to call twice.
func (av *avahi) publish(t *testing.T, args ...string) (stop func()) {
	t.Helper()
	cmd := av.host.Command(context.Background(), "avahi-publish", args...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+av.bus)
	out := newLogSink(io.Discard)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("avahi-publish %v: %v", args, err)
	}
	poll.Until(t, fmt.Sprintf("avahi-publish %v is established", args), 10*time.Second, func() bool {
		return strings.Contains(out.tail(10), "Established under name")
	})
	var once sync.Once
	stop = func() { once.Do(func() { stopProcess(t, cmd) }) }
	t.Cleanup(stop)
	return stop
}

// complaints returns avahi-daemon's log lines that report a bad packet.
func (av *avahi) complaints() []string {
	var out []string
	for _, l := range strings.Split(av.log.tail(10000), "\n") {
		low := strings.ToLower(l)
		if strings.Contains(low, "invalid") || strings.Contains(low, "bogus") || strings.Contains(low, "ignoring") {
			out = append(out, l)
		}
	}
	return out
}

// stopProcess sends SIGTERM to cmd's process and waits for it, killing it
// after 10 s.
func stopProcess(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Errorf("%s did not stop within 10 s of SIGTERM; killed", cmd.Path)
	}
}

// trapEnv selects TestHelperTrap in a re-run of the test binary; its value
// is the address to listen on.
const trapEnv = "PEERNET_E2E_TRAP"

// TestHelperTrap is not a test: it is the body of the helper process that
// stands at a forged address. It accepts TCP connections, printing
// "accept" for each and closing it at once, until stdin is closed.
func TestHelperTrap(t *testing.T) {
	addr := os.Getenv(trapEnv)
	if addr == "" {
		t.Skip("helper process for TestAvahi")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		ln.Close()
	}()
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		fmt.Println("accept")
		c.Close()
	}
}

// trap is a TestHelperTrap process; it records when each connection came.
type trap struct {
	mu    sync.Mutex
	dials []time.Time
	first chan struct{} // closed at the first dial
}

// startTrap runs TestHelperTrap in h, listening on addr, until the test
// ends.
func startTrap(t *testing.T, h *netns.Host, addr string) *trap {
	t.Helper()
	cmd := h.HelperCommand(context.Background(), "TestHelperTrap", trapEnv+"="+addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tr := &trap{first: make(chan struct{})}
	listening := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			switch sc.Text() {
			case "listening":
				close(listening)
			case "accept":
				tr.mu.Lock()
				tr.dials = append(tr.dials, time.Now())
				if len(tr.dials) == 1 {
					close(tr.first)
				}
				tr.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		<-done
		cmd.Wait()
	})
	select {
	case <-listening:
	case <-done:
		t.Fatal("trap helper exited before listening")
	case <-time.After(20 * time.Second):
		t.Fatal("trap helper did not listen within 20 s")
	}
	return tr
}

// waitFirst waits for the first dial and returns its time.
func (tr *trap) waitFirst(t testing.TB, limit time.Duration) time.Time {
	t.Helper()
	select {
	case <-tr.first:
	case <-time.After(limit):
		t.Fatalf("no dial to the forged address within %v", limit)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.dials[0]
}

// before returns the dials that came before end.
func (tr *trap) before(end time.Time) []time.Time {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []time.Time
	for _, d := range tr.dials {
		if d.Before(end) {
			out = append(out, d)
		}
	}
	return out
}

// legacyEnv selects TestHelperLegacyQuery in a re-run of the test binary;
// its value is the instance name to ask for.
const legacyEnv = "PEERNET_E2E_LEGACY_QUERY"

// legacyReply is what TestHelperLegacyQuery saw, printed as JSON.
type legacyReply struct {
	From       netip.AddrPort
	IDMatch    bool
	Question   string // "name TYPE"
	Answer     string // the answer section, one record a line
	MaxTTL     uint32
	CacheFlush bool
}

// TestHelperLegacyQuery is not a test: it sends one legacy unicast query
// (from an ephemeral port, with a random id) for the SRV record of the
// instance in legacyEnv to the IPv4 mDNS group, and prints the first reply
// as JSON, or nothing if none comes within 2 s.
func TestHelperLegacyQuery(t *testing.T) {
	name := os.Getenv(legacyEnv)
	if name == "" {
		t.Skip("helper process for TestAvahi")
	}
	c, err := net.ListenPacket("udp4", "0.0.0.0:0") // not connected: replies come from the responder
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := new(dns.Msg).SetQuestion(name, dns.TypeSRV)
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteTo(b, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 9000)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		return
	}
	var m dns.Msg
	if err := m.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	r := legacyReply{From: from.(*net.UDPAddr).AddrPort(), IDMatch: m.Id == q.Id}
	if len(m.Question) == 1 {
		r.Question = m.Question[0].Name + " " + dns.TypeToString[m.Question[0].Qtype]
	}
	var lines []string
	for _, rr := range slices.Concat(m.Answer, m.Extra) {
		r.MaxTTL = max(r.MaxTTL, rr.Header().Ttl)
		r.CacheFlush = r.CacheFlush || rr.Header().Class&(1<<15) != 0
	}
	for _, rr := range m.Answer {
		lines = append(lines, rr.String())
	}
	r.Answer = strings.Join(lines, "\n")
	json.NewEncoder(os.Stdout).Encode(r)
}

// legacyQuery runs TestHelperLegacyQuery in h and returns what it saw.
func legacyQuery(t testing.TB, h *netns.Host, name string) legacyReply {
	t.Helper()
	out, err := h.HelperCommand(context.Background(), "TestHelperLegacyQuery", legacyEnv+"="+name).Output()
	if err != nil {
		t.Fatalf("legacy query helper: %v\n%s", err, out)
	}
	var r legacyReply
	for _, line := range strings.Split(string(out), "\n") {
		if json.Unmarshal([]byte(line), &r) == nil {
			break
		}
	}
	return r
}
