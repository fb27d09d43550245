package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/testing/peernettest"
	"github.com/peernet/peernet/trust"
)

func echo(_ context.Context, req *host.Request) ([]byte, error) { return req.Args, nil }

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func expose(t testing.TB, n *host.Node, handle string, h host.HandlerFunc, opts host.ExposeOptions) {
	t.Helper()
	if err := n.Expose(handle, h, opts); err != nil {
		t.Fatalf("expose %s: %v", handle, err)
	}
}

// The seed's own scenario: alice and bob trust each other, connect, call and
// send; an unexposed handle is refused.
func TestAliceBobCallAndSend(t *testing.T) {
	nodes := peernettest.Nodes(t, 2, host.Config{})
	alice, bob := nodes[0], nodes[1]

	got := make(chan *host.Request, 1)
	expose(t, bob, "echo", echo, host.ExposeOptions{})
	expose(t, bob, "inbox", func(_ context.Context, r *host.Request) ([]byte, error) {
		got <- r
		return nil, nil
	}, host.ExposeOptions{})

	res, err := alice.Call(ctxTimeout(t, 5*time.Second), bob.Identity(), "echo", []byte("hello"))
	if err != nil || string(res) != "hello" {
		t.Fatalf("Call echo = %q, %v; want hello", res, err)
	}

	if err := alice.Send(ctxTimeout(t, 5*time.Second), bob.Identity(), "inbox", []byte("note")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	select {
	case r := <-got:
		if string(r.Args) != "note" || r.Caller != alice.Identity() || r.Kind != host.KindSend || r.Handle != "inbox" {
			t.Fatalf("inbox got %+v", r)
		}
	case <-time.After(peernettest.Timeout):
		t.Fatal("send never reached the handler")
	}

	_, err = alice.Call(ctxTimeout(t, 5*time.Second), bob.Identity(), "nope", nil)
	if !errors.Is(err, host.ErrNoSuchHandle) {
		t.Fatalf("call to unexposed handle: %v, want ErrNoSuchHandle", err)
	}
	var re *host.RemoteError
	if !errors.As(err, &re) || re.Peer != bob.Identity() || re.Handle != "nope" {
		t.Fatalf("error %v is not a RemoteError naming bob and the handle", err)
	}

	// Both directions work on the one connection.
	expose(t, alice, "echo", echo, host.ExposeOptions{})
	if res, err := bob.Call(ctxTimeout(t, 5*time.Second), alice.Identity(), "echo", []byte("back")); err != nil || string(res) != "back" {
		t.Fatalf("bob->alice Call = %q, %v", res, err)
	}
}

func TestCallerIdentityAndHandlerError(t *testing.T) {
	nodes := peernettest.Nodes(t, 2, host.Config{})
	a, b := nodes[0], nodes[1]
	expose(t, b, "whoami", func(_ context.Context, r *host.Request) ([]byte, error) {
		return []byte(r.Caller.String()), nil
	}, host.ExposeOptions{})
	expose(t, b, "fail", func(context.Context, *host.Request) ([]byte, error) {
		return nil, errors.New("disk on fire")
	}, host.ExposeOptions{})

	expose(t, b, "down", func(context.Context, *host.Request) ([]byte, error) {
		return nil, fmt.Errorf("%w: plugin is restarting", host.ErrUnavailable)
	}, host.ExposeOptions{})

	_, err := a.Call(ctxTimeout(t, 5*time.Second), b.Identity(), "down", nil)
	var down *host.RemoteError
	if !errors.Is(err, host.ErrUnavailable) || !errors.As(err, &down) || down.Message != "plugin is restarting" {
		t.Fatalf("handler returning ErrUnavailable: %v; want ErrUnavailable with message %q", err, "plugin is restarting")
	}
	res, err := a.Call(ctxTimeout(t, 5*time.Second), b.Identity(), "whoami", nil)
	if err != nil || string(res) != a.Identity().String() {
		t.Fatalf("whoami = %q, %v; want %s", res, err, a.Identity())
	}
	_, err = a.Call(ctxTimeout(t, 5*time.Second), b.Identity(), "fail", nil)
	var re *host.RemoteError
	if !errors.Is(err, host.ErrHandlerError) || !errors.As(err, &re) || re.Message != "disk on fire" {
		t.Fatalf("fail: %v; want ErrHandlerError carrying the message", err)
	}
}

func TestUntrustedNodeRefused(t *testing.T) {
	nodes := peernettest.Nodes(t, 2, host.Config{})
	alice, bob := nodes[0], nodes[1]
	mallory := peernettest.Node(t, host.Config{})

	// Mallory trusts alice, but alice does not trust mallory.
	if err := mallory.Trust(alice.Identity(), "alice"); err != nil {
		t.Fatal(err)
	}
	err := mallory.Connect(ctxTimeout(t, 5*time.Second), alice.Identity(), peernettest.Addr(alice))
	if !errors.Is(err, host.ErrNotTrustedByPeer) {
		t.Fatalf("mallory connect: %v, want ErrNotTrustedByPeer", err)
	}
	if alice.Connected(mallory.Identity()) || mallory.Connected(alice.Identity()) {
		t.Fatal("untrusted node is connected")
	}
	// Alice will not dial someone she does not trust.
	err = alice.Connect(ctxTimeout(t, 5*time.Second), mallory.Identity(), peernettest.Addr(mallory))
	if !errors.Is(err, host.ErrNotTrusted) {
		t.Fatalf("alice connect to untrusted: %v, want ErrNotTrusted", err)
	}
	// Alice and bob are unaffected.
	expose(t, bob, "echo", echo, host.ExposeOptions{})
	if _, err := alice.Call(ctxTimeout(t, 5*time.Second), bob.Identity(), "echo", nil); err != nil {
		t.Fatalf("alice->bob after mallory: %v", err)
	}
}

func TestConnectWrongKey(t *testing.T) {
	a := peernettest.Node(t, host.Config{})
	c := peernettest.Node(t, host.Config{})
	d := peernettest.Node(t, host.Config{})
	peernettest.TrustEach(t, a, c)
	peernettest.TrustEach(t, a, d)
	// a means to reach d but dials c's address.
	err := a.Connect(ctxTimeout(t, 5*time.Second), d.Identity(), peernettest.Addr(c))
	if !errors.Is(err, host.ErrWrongPeer) {
		t.Fatalf("connect to wrong key: %v, want ErrWrongPeer", err)
	}
	if a.Connected(d.Identity()) {
		t.Fatal("connected to d after wrong-key dial")
	}
}

func TestConnectRefusedAndTimeout(t *testing.T) {
	a := peernettest.Node(t, host.Config{})
	b := peernettest.Node(t, host.Config{})
	peernettest.TrustEach(t, a, b)

	// Nothing listens on a port we just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	if err := a.Connect(ctxTimeout(t, 5*time.Second), b.Identity(), dead); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("connect to closed port: %v, want connection refused", err)
	}

	// A listener that accepts but never speaks: the context's deadline wins.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	err = a.Connect(ctxTimeout(t, 200*time.Millisecond), b.Identity(), silent.Addr().String())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("connect to silent listener: %v, want DeadlineExceeded", err)
	}
}

func TestUntrustDisconnectsAndFailsCalls(t *testing.T) {
	nodes := peernettest.Nodes(t, 2, host.Config{})
	a, b := nodes[0], nodes[1]
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	expose(t, b, "block", func(ctx context.Context, _ *host.Request) ([]byte, error) {
		select {
		case <-ctx.Done():
		case <-release:
		}
		return nil, ctx.Err()
	}, host.ExposeOptions{})

	errc := make(chan error, 1)
	go func() {
		_, err := a.Call(ctxTimeout(t, 30*time.Second), b.Identity(), "block", nil)
		errc <- err
	}()
	peernettest.Eventually(t, "call reaches b", func() bool { return len(b.Handles()) == 1 && inflight(b) })

	start := time.Now()
	if err := a.Untrust(b.Identity()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, host.ErrNotTrusted) {
			t.Fatalf("pending call failed with %v, want ErrNotTrusted", err)
		}
	case <-time.After(time.Second):
		t.Fatal("pending call still waiting 1s after Untrust")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("untrust took %v", d)
	}
	if a.Connected(b.Identity()) {
		t.Fatal("a still connected to b after untrust")
	}
	peernettest.Eventually(t, "b sees the connection gone", func() bool { return !b.Connected(a.Identity()) })
	// And a refuses b from now on.
	err := b.Connect(ctxTimeout(t, 5*time.Second), a.Identity(), peernettest.Addr(a))
	if !errors.Is(err, host.ErrNotTrustedByPeer) {
		t.Fatalf("b reconnect after untrust: %v, want ErrNotTrustedByPeer", err)
	}
}

// inflight reports whether n is running any inbound request, via Status.
func inflight(n *host.Node) bool { return n.Inflight() > 0 }

func TestSendToAbsentPeerFailsAtOnce(t *testing.T) {
	a := peernettest.Node(t, host.Config{})
	b := peernettest.Node(t, host.Config{})
	peernettest.TrustEach(t, a, b)
	if err := a.Send(ctxTimeout(t, 5*time.Second), b.Identity(), "x", nil); !errors.Is(err, host.ErrNotConnected) {
		t.Fatalf("Send to unconnected peer: %v, want ErrNotConnected", err)
	}
	if _, err := a.Call(ctxTimeout(t, 5*time.Second), b.Identity(), "x", nil); !errors.Is(err, host.ErrNotConnected) {
		t.Fatalf("Call to unconnected peer: %v, want ErrNotConnected", err)
	}
}

func TestCancelReachesHandler(t *testing.T) {
	nodes := peernettest.Nodes(t, 2, host.Config{})
	a, b := nodes[0], nodes[1]
	started := make(chan struct{})
	cancelled := make(chan error, 1)
	expose(t, b, "wait", func(ctx context.Context, _ *host.Request) ([]byte, error) {
		close(started)
		<-ctx.Done()
		cancelled <- ctx.Err()
		return nil, ctx.Err()
	}, host.ExposeOptions{})

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := a.Call(ctx, b.Identity(), "wait", nil)
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call returned %v", err)
	}
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler saw %v, want Canceled", err)
		}
	case <-time.After(peernettest.Timeout):
		t.Fatal("cancel never reached the handler")
	}
}

func TestDeadlineTravels(t *testing.T) {
	nodes := peernettest.Nodes(t, 2, host.Config{})
	a, b := nodes[0], nodes[1]
	deadlines := make(chan time.Duration, 1)
	expose(t, b, "wait", func(ctx context.Context, _ *host.Request) ([]byte, error) {
		d, ok := ctx.Deadline()
		if !ok {
			deadlines <- -1
		} else {
			deadlines <- time.Until(d)
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}, host.ExposeOptions{})
	_, err := a.Call(ctxTimeout(t, 300*time.Millisecond), b.Identity(), "wait", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call = %v, want DeadlineExceeded", err)
	}
	if d := <-deadlines; d <= 0 || d > 300*time.Millisecond {
		t.Fatalf("handler's deadline was %v away, want within (0, 300ms]", d)
	}
}

func TestDefaultCallTimeout(t *testing.T) {
	nodes := peernettest.Nodes(t, 2, host.Config{CallTimeout: 200 * time.Millisecond})
	a, b := nodes[0], nodes[1]
	expose(t, b, "wait", func(ctx context.Context, _ *host.Request) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, host.ExposeOptions{})
	start := time.Now()
	_, err := a.Call(context.Background(), b.Identity(), "wait", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call without deadline = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Fatalf("default timeout took %v, want about 200ms", d)
	}
}

func TestHandlerPanic(t *testing.T) {
	nodes := peernettest.Nodes(t, 2, host.Config{})
	a, b := nodes[0], nodes[1]
	expose(t, b, "boom", func(context.Context, *host.Request) ([]byte, error) { panic("kaboom") }, host.ExposeOptions{})
	expose(t, b, "echo", echo, host.ExposeOptions{})
	_, err := a.Call(ctxTimeout(t, 5*time.Second), b.Identity(), "boom", nil)
	var re *host.RemoteError
	if !errors.Is(err, host.ErrHandlerCrashed) || !errors.As(err, &re) || !strings.Contains(re.Message, "kaboom") {
		t.Fatalf("panicking handler: %v, want ErrHandlerCrashed with the panic value", err)
	}
	if res, err := a.Call(ctxTimeout(t, 5*time.Second), b.Identity(), "echo", []byte("still here")); err != nil || string(res) != "still here" {
		t.Fatalf("connection after panic: %q, %v", res, err)
	}
}

func TestOverloaded(t *testing.T) {
	nodes := peernettest.Nodes(t, 2, host.Config{})
	a, b := nodes[0], nodes[1]
	release := make(chan struct{})
	var running atomic.Int32
	expose(t, b, "slow", func(ctx context.Context, _ *host.Request) ([]byte, error) {
		running.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return []byte("done"), nil
	}, host.ExposeOptions{MaxConcurrent: 2})

	var wg sync.WaitGroup
	results := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.Call(ctxTimeout(t, 10*time.Second), b.Identity(), "slow", nil)
			results <- err
		}()
	}
	peernettest.Eventually(t, "two calls running", func() bool { return running.Load() == 2 })
	start := time.Now()
	_, err := a.Call(ctxTimeout(t, 10*time.Second), b.Identity(), "slow", nil)
	if !errors.Is(err, host.ErrOverloaded) {
		t.Fatalf("third call: %v, want ErrOverloaded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("overloaded answer took %v; want it at once", d)
	}
	close(release)
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatalf("admitted call failed: %v", err)
		}
	}
}

func TestAllowListAndAuthorize(t *testing.T) {
	nodes := peernettest.Nodes(t, 3, host.Config{})
	a, b, c := nodes[0], nodes[1], nodes[2]
	expose(t, c, "allow", echo, host.ExposeOptions{Allow: host.AllowOnly(a.Identity())})
	expose(t, c, "auth", echo, host.ExposeOptions{Authorize: func(p trust.PeerID, handle string) bool {
		return p == b.Identity() && handle == "auth"
	}})
	for _, tc := range []struct {
		from    *host.Node
		handle  string
		wantErr error
	}{
		{a, "allow", nil},
		{b, "allow", host.ErrForbidden},
		{a, "auth", host.ErrForbidden},
		{b, "auth", nil},
	} {
		_, err := tc.from.Call(ctxTimeout(t, 5*time.Second), c.Identity(), tc.handle, []byte("x"))
		if !errors.Is(err, tc.wantErr) && !(tc.wantErr == nil && err == nil) {
			t.Errorf("%s calling %s: %v, want %v", tc.from.Name(), tc.handle, err, tc.wantErr)
		}
	}
}

func TestExposeReplaceAndRevoke(t *testing.T) {
	nodes := peernettest.Nodes(t, 2, host.Config{})
	a, b := nodes[0], nodes[1]
	call := func() (string, error) {
		res, err := a.Call(ctxTimeout(t, 5*time.Second), b.Identity(), "h", nil)
		return string(res), err
	}
	expose(t, b, "h", func(context.Context, *host.Request) ([]byte, error) { return []byte("v1"), nil }, host.ExposeOptions{})
	if got, err := call(); got != "v1" || err != nil {
		t.Fatalf("v1: %q, %v", got, err)
	}
	expose(t, b, "h", func(context.Context, *host.Request) ([]byte, error) { return []byte("v2"), nil }, host.ExposeOptions{})
	if got, err := call(); got != "v2" || err != nil {
		t.Fatalf("after re-expose: %q, %v", got, err)
	}
	if !b.Revoke("h") {
		t.Fatal("Revoke reported the handle was not exposed")
	}
	if _, err := call(); !errors.Is(err, host.ErrNoSuchHandle) {
		t.Fatalf("after revoke: %v, want ErrNoSuchHandle", err)
	}
	if b.Revoke("h") {
		t.Fatal("second Revoke reported success")
	}
	if err := b.Expose("", host.HandlerFunc(echo), host.ExposeOptions{}); !errors.Is(err, host.ErrBadHandle) {
		t.Fatalf("empty handle: %v", err)
	}
	if err := b.Expose(strings.Repeat("x", 256), host.HandlerFunc(echo), host.ExposeOptions{}); !errors.Is(err, host.ErrBadHandle) {
		t.Fatalf("long handle: %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	nodes := peernettest.Nodes(t, 2, host.Config{MaxMessageSize: 64 << 10})
	a, b := nodes[0], nodes[1]
	expose(t, b, "big", func(context.Context, *host.Request) ([]byte, error) {
		return make([]byte, 100<<10), nil
	}, host.ExposeOptions{})
	expose(t, b, "echo", echo, host.ExposeOptions{})
	if _, err := a.Call(ctxTimeout(t, 5*time.Second), b.Identity(), "echo", make([]byte, 65<<10)); !errors.Is(err, host.ErrTooLarge) {
		t.Fatalf("oversized args: %v, want ErrTooLarge", err)
	}
	if _, err := a.Call(ctxTimeout(t, 5*time.Second), b.Identity(), "big", nil); !errors.Is(err, host.ErrTooLarge) {
		t.Fatalf("oversized result: %v, want ErrTooLarge", err)
	}
	// Just under the limit works, and spans several records.
	args := bytes.Repeat([]byte("z"), 60<<10)
	if res, err := a.Call(ctxTimeout(t, 5*time.Second), b.Identity(), "echo", args); err != nil || !bytes.Equal(res, args) {
		t.Fatalf("large echo: %d bytes, %v", len(res), err)
	}
}

func TestCloseFailsCallsAtOnce(t *testing.T) {
	nodes := peernettest.Nodes(t, 2, host.Config{})
	a, b := nodes[0], nodes[1]
	started := make(chan struct{}, 8)
	expose(t, b, "wait", func(ctx context.Context, _ *host.Request) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}, host.ExposeOptions{})

	const calls = 4
	errs := make(chan error, 2*calls)
	for range calls {
		go func() {
			_, err := a.Call(ctxTimeout(t, 30*time.Second), b.Identity(), "wait", nil)
			errs <- err
		}()
	}
	for range calls {
		<-started
	}
	start := time.Now()
	a.Close()
	for range calls {
		select {
		case err := <-errs:
			if !errors.Is(err, host.ErrClosed) {
				t.Errorf("caller on closed node got %v, want ErrClosed", err)
			}
		case <-time.After(time.Second):
			t.Fatal("a call was still waiting 1s after Close")
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	peernettest.Eventually(t, "b sees a gone", func() bool { return !b.Connected(a.Identity()) })
	if _, err := a.Call(ctxTimeout(t, time.Second), b.Identity(), "wait", nil); !errors.Is(err, host.ErrClosed) {
		t.Fatalf("Call after Close: %v, want ErrClosed", err)
	}
}

func TestRestartKeepsIdentityAndTrust(t *testing.T) {
	dir := t.TempDir()
	a := peernettest.Node(t, host.Config{Name: "restart-a", DataDir: dir})
	b := peernettest.Node(t, host.Config{})
	peernettest.TrustEach(t, a, b)
	id := a.Identity()
	a.Close()

	a2 := peernettest.Node(t, host.Config{Name: "restart-a", DataDir: dir})
	if a2.Identity() != id {
		t.Fatalf("identity changed across restart: %s -> %s", id, a2.Identity())
	}
	peers := a2.Peers()
	if len(peers) != 1 || peers[0].ID != b.Identity() || peers[0].Label != b.Name() {
		t.Fatalf("trust list after restart: %+v", peers)
	}
	peernettest.Connect(t, a2, b)
}

// TestDataDirLocked checks that the data dir, not the name, keeps two
// nodes in one process apart: a name is only a log label.
func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	a := peernettest.Node(t, host.Config{Name: "same", DataDir: dir})
	if _, err := host.Start(host.Config{Name: "other", DataDir: dir}); !errors.Is(err, trust.ErrDirLocked) {
		t.Fatalf("second node on one data dir: %v, want ErrDirLocked", err)
	}
	b := peernettest.Node(t, host.Config{Name: "same", DataDir: t.TempDir()})
	c, err := host.Start(host.Config{DataDir: t.TempDir()}) // no name at all
	if err != nil {
		t.Fatalf("a node without a name: %v", err)
	}
	defer c.Close()
	if a.Identity() == b.Identity() || b.Identity() == c.Identity() {
		t.Fatal("nodes with their own data dirs share an identity")
	}
}

func TestPeersAndEvents(t *testing.T) {
	a := peernettest.Node(t, host.Config{})
	b := peernettest.Node(t, host.Config{})
	peernettest.TrustEach(t, a, b)

	var mu sync.Mutex
	var evs []host.PeerEvent
	cancel := a.Subscribe(func(e host.PeerEvent) {
		mu.Lock()
		evs = append(evs, e)
		mu.Unlock()
	})
	defer cancel()
	snapshot := func() []host.PeerEvent {
		mu.Lock()
		defer mu.Unlock()
		return append([]host.PeerEvent(nil), evs...)
	}

	if p := a.Peers(); len(p) != 1 || p[0].Connected || p[0].Label != b.Name() {
		t.Fatalf("Peers before connect: %+v", p)
	}
	peernettest.Connect(t, a, b)
	p := a.Peers()
	if len(p) != 1 || !p[0].Connected || p[0].Addr != peernettest.Addr(b) {
		t.Fatalf("Peers after connect: %+v", p)
	}
	peernettest.Eventually(t, "up event", func() bool { return len(snapshot()) == 1 })
	if e := snapshot()[0]; !e.Up || e.Peer != b.Identity() || e.Via != "dialed" {
		t.Fatalf("up event: %+v", e)
	}
	b.Close()
	peernettest.Eventually(t, "down event", func() bool { return len(snapshot()) == 2 })
	if e := snapshot()[1]; e.Up || e.Peer != b.Identity() || !errors.Is(e.Reason, host.ErrConnLost) {
		t.Fatalf("down event: %+v (reason %v)", e, e.Reason)
	}
	if p := a.Peers(); p[0].Connected || p[0].Addr != peernettest.Addr(b) {
		t.Fatalf("Peers after b closed: %+v", p)
	}
}

func TestManyConcurrentCallsBothWays(t *testing.T) {
	nodes := peernettest.Nodes(t, 2, host.Config{})
	a, b := nodes[0], nodes[1]
	expose(t, a, "echo", echo, host.ExposeOptions{MaxConcurrent: -1})
	expose(t, b, "echo", echo, host.ExposeOptions{MaxConcurrent: -1})
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for i := range 200 {
		for _, pair := range [][2]*host.Node{{a, b}, {b, a}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				msg := []byte(fmt.Sprintf("%s-%d", pair[0].Name(), i))
				res, err := pair[0].Call(ctxTimeout(t, 10*time.Second), pair[1].Identity(), "echo", msg)
				if err == nil && !bytes.Equal(res, msg) {
					err = fmt.Errorf("got %q for %q", res, msg)
				}
				if err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestHoldRequestsUntilReady(t *testing.T) {
	a := peernettest.Node(t, host.Config{})
	b := peernettest.Node(t, host.Config{HoldRequests: true})
	peernettest.TrustEach(t, a, b)
	peernettest.Connect(t, a, b)
	expose(t, b, "echo", echo, host.ExposeOptions{})

	_, err := a.Call(ctxTimeout(t, 5*time.Second), b.Identity(), "echo", []byte("early"))
	var re *host.RemoteError
	if !errors.Is(err, host.ErrUnavailable) || !errors.As(err, &re) || re.Message != "node is starting" {
		t.Fatalf("call before Ready: %v; want unavailable, node is starting", err)
	}
	b.Ready()
	if res, err := a.Call(ctxTimeout(t, 5*time.Second), b.Identity(), "echo", []byte("now")); err != nil || string(res) != "now" {
		t.Fatalf("call after Ready: %q, %v", res, err)
	}
}

func TestDeclaredPeers(t *testing.T) {
	b := peernettest.Node(t, host.Config{})
	a := peernettest.Node(t, host.Config{Peers: []host.Peer{{ID: b.Identity(), Label: "bee", Addr: peernettest.Addr(b)}}})
	if err := b.Trust(a.Identity(), "a"); err != nil {
		t.Fatal(err)
	}
	peernettest.Eventually(t, "a dials its declared peer", func() bool { return a.Connected(b.Identity()) })
	p := a.Peers()
	if len(p) != 1 || p[0].Label != "bee" || p[0].Source != "config" {
		t.Fatalf("a's peers: %+v", p)
	}
	if _, err := host.Start(host.Config{Name: "self-declared", DataDir: t.TempDir(), Peers: []host.Peer{{Label: "zero"}}}); err == nil {
		t.Fatal("Start accepted a declared peer with no ID")
	}
}
