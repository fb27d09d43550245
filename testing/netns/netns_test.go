package netns

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

const helperEnv = "PEERNET_NETNS_HELPER" // "listen ADDR" or "dial ADDR"

// TestHelperNetns is not a test: it is the body of the helper processes of
// TestNet. "listen ADDR" accepts TCP connections on ADDR and writes "pong"
// to each until stdin is closed; "dial ADDR" connects to ADDR and prints
// what it reads, failing if it cannot.
func TestHelperNetns(t *testing.T) {
	mode, addr, ok := strings.Cut(os.Getenv(helperEnv), " ")
	if !ok {
		t.Skip("helper process for TestNet")
	}
	switch mode {
	case "listen":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			io.Copy(io.Discard, os.Stdin)
			ln.Close()
		}()
		os.Stdout.WriteString("listening\n")
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("pong"))
			c.Close()
		}
	case "dial":
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		os.Stdout.Write(append(b, '\n'))
	}
}

// dial runs a dial helper in h and reports whether it got "pong" from addr.
func dial(t *testing.T, h *Host, addr netip.AddrPort) bool {
	t.Helper()
	out, err := h.HelperCommand(t.Context(), "TestHelperNetns", helperEnv+"=dial "+addr.String()).Output()
	return err == nil && strings.Contains(string(out), "pong")
}

func interfaceNames(t *testing.T) []string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	slices.Sort(names)
	return names
}

func TestNet(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	before := interfaceNames(t)
	nw := New(t, 2)
	if after := interfaceNames(t); !slices.Equal(before, after) {
		t.Errorf("interfaces of the test's own namespace changed: %v -> %v", before, after)
	}
	if nw.Len() != 2 {
		t.Fatalf("Len = %d, want 2", nw.Len())
	}
	for i := range 2 {
		h := nw.Host(i)
		if h.Index != i || !Prefix4.Contains(h.Addr) || !Prefix6.Contains(h.Addr6) || h.Addr == nw.Host(1-i).Addr {
			t.Errorf("host %d = %+v, want distinct addresses in %v and %v", i, h, Prefix4, Prefix6)
		}
		out, err := h.Command(t.Context(), "ip", "-o", "addr", "show", "dev", Iface).CombinedOutput()
		if err != nil {
			t.Fatalf("ip addr in %s: %v: %s", h.Name, err, out)
		}
		for _, a := range []netip.Addr{h.Addr, h.Addr6} {
			if !strings.Contains(string(out), a.String()+"/") {
				t.Errorf("%s in %s lacks %v:\n%s", Iface, h.Name, a, out)
			}
		}
	}

	// A listener in host 0, on both families.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	server, client := nw.Host(0), nw.Host(1)
	addr4 := netip.AddrPortFrom(server.Addr, 7777)
	addr6 := netip.AddrPortFrom(server.Addr6, 7777)
	ln := server.HelperCommand(ctx, "TestHelperNetns", helperEnv+"=listen :7777")
	stdin, err := ln.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := ln.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ln.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		io.Copy(io.Discard, stdout)
		if err := ln.Wait(); err != nil {
			t.Errorf("listener: %v", err)
		}
	}()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "listening\n" {
		t.Fatalf("listener said %q, %v; want \"listening\"", line, err)
	}

	for _, a := range []netip.AddrPort{addr4, addr6} {
		if !dial(t, client, a) {
			t.Errorf("host 1 cannot reach %v", a)
		}
	}
	if dial(t, client, netip.MustParseAddrPort("127.0.0.1:7777")) {
		t.Error("host 1 reached host 0's listener on its own loopback: namespaces not separate")
	}

	nw.LinkDown(1)
	if dial(t, client, addr4) {
		t.Error("host 1 reached host 0 with its link down")
	}
	nw.LinkUp(1)
	deadline := time.Now().Add(10 * time.Second)
	for !dial(t, client, addr4) {
		if time.Now().After(deadline) {
			t.Fatal("host 1 cannot reach host 0 within 10s after LinkUp")
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}
