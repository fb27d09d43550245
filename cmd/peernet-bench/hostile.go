package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// The hostile section replays three attacks of the hostile-peer suite as
// measurements, against a node with the default limits:
//
//   - flood: a trusted peer floods calls to a handler that allocates and
//     returns 1 MiB, and never reads; the node runs in the child process
//     (-serve-idle), whose peak RSS (VmHWM) is the figure.
//   - stall: 256 anonymous sockets connect to that child and stall (half
//     idle, half trickling a partial preamble) while fresh trusted peers
//     handshake; the figures are the share that succeed and their times
//     against the same handshakes unloaded.
//   - liveness: in this process, a node that dialled its peer through a
//     proxy that freezes (stops forwarding without closing): the time to
//     its down event, and from its reconnect to the first call the other
//     side completes on the fresh connection.
type hostileResult struct {
	FloodSeconds   float64 `json:"flood_seconds"`
	FloodResult    int     `json:"flood_result_bytes"`
	FloodBudget    int     `json:"flood_budget_bytes"`
	FloodCalls     int64   `json:"flood_calls_written"`
	FloodBaseRSS   uint64  `json:"flood_base_rss_bytes"`
	FloodPeakRSS   uint64  `json:"flood_peak_rss_bytes"`  // VmHWM of the node's process
	FloodLiveHeap  uint64  `json:"flood_live_heap_bytes"` // HeapInuse after GC at the end of the flood, the peer still connected
	FloodWriteWait float64 `json:"flood_seconds_blocked"` // of the flood, time the attacker's writes were blocked

	Stalled       int     `json:"stalled_sockets"`
	Handshakes    int     `json:"handshakes"`
	UnloadedP50Us float64 `json:"unloaded_p50_us"`
	UnloadedMaxUs float64 `json:"unloaded_max_us"`
	// UnloadedWithin counts the unloaded handshakes within 2× their own
	// p50: the machine's own spread, against which WithinTwiceP50 reads.
	UnloadedWithin int     `json:"unloaded_within_2x_p50"`
	AttackP50Us    float64 `json:"attack_p50_us"`
	AttackMaxUs    float64 `json:"attack_max_us"`
	Succeeded      int     `json:"succeeded"`
	WithinTwiceP50 int     `json:"within_2x_unloaded_p50"`

	PingInterval      string  `json:"ping_interval"`
	Trials            int     `json:"liveness_trials"`
	FrozenToDownMs    float64 `json:"frozen_to_down_ms_max"`
	ReconnectToCallMs float64 `json:"reconnect_to_call_ms_max"`
}

const (
	floodResult   = 1 << 20
	floodDuration = 5 * time.Second
	stallSockets  = 256
	stallTrials   = 100
	livePing      = time.Second
	liveTrials    = 5
)

func measureHostile(o *options) (*hostileResult, error) {
	r := &hostileResult{FloodResult: floodResult, FloodBudget: host.DefaultMaxPeerMemory}
	o.progress("hostile: a trusted peer floods calls to a 1 MiB handler for %v and never reads", floodDuration)
	if err := measureFlood(r); err != nil {
		return nil, fmt.Errorf("flood: %w", err)
	}
	o.progress("hostile: %d fresh trusted handshakes, unloaded, then with %d stalled sockets", stallTrials, stallSockets)
	if err := measureStall(r); err != nil {
		return nil, fmt.Errorf("stall: %w", err)
	}
	o.progress("hostile: %d frozen links, ping interval %v", liveTrials, livePing)
	if err := measureLiveness(r); err != nil {
		return nil, fmt.Errorf("liveness: %w", err)
	}
	return r, nil
}

// childPeer is a fresh identity that the child node trusts.
func childPeer(ch *child) (*wire.Local, error) {
	id, err := trust.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	if l, err := ch.ask("trust " + id.PeerID().String()); err != nil || l != "ok" {
		return nil, fmt.Errorf("child trusting a peer: %q, %v", l, err)
	}
	return wire.NewLocal(id, wire.Config{})
}

func startHostileChild() (*child, childHello, error) {
	var hello childHello
	ch, err := startChild()
	if err != nil {
		return nil, hello, err
	}
	l, err := ch.line()
	if err == nil {
		err = json.Unmarshal([]byte(l), &hello)
	}
	if err != nil {
		ch.stop()
		return nil, hello, err
	}
	return ch, hello, nil
}

func measureFlood(r *hostileResult) error {
	ch, hello, err := startHostileChild()
	if err != nil {
		return err
	}
	defer ch.stop()
	if l, err := ch.ask("big " + strconv.Itoa(floodResult)); err != nil || l != "ok" {
		return fmt.Errorf("exposing big: %q, %v", l, err)
	}
	local, err := childPeer(ch)
	if err != nil {
		return err
	}
	base, err := ch.stats()
	if err != nil {
		return err
	}
	r.FloodBaseRSS = base.RSS
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", hello.Addr)
	if err != nil {
		return err
	}
	c, err := wire.Client(ctx, raw, local, hello.Peer)
	if err != nil {
		raw.Close()
		return err
	}
	defer c.Close()

	var batch []byte
	id := uint64(0)
	start := time.Now()
	var blocked time.Duration
	for time.Since(start) < floodDuration {
		batch = batch[:0]
		for range 64 {
			id++
			batch, _ = wire.AppendMessage(batch, &wire.Message{Type: wire.TypeCall, ID: id, Handle: "big"}, 0)
		}
		t0 := time.Now()
		c.SetWriteDeadline(t0.Add(100 * time.Millisecond))
		_, err := c.Write(batch)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			blocked += time.Since(t0)
			id -= 64 // may be partly written; the ids past it were never sent
			continue
		}
		if err != nil {
			return fmt.Errorf("the node dropped the flooding peer before %v: %w", floodDuration, err)
		}
		r.FloodCalls += 64
	}
	r.FloodSeconds = time.Since(start).Seconds()
	r.FloodWriteWait = blocked.Seconds()
	l, err := ch.ask("hwm")
	if err != nil {
		return err
	}
	if r.FloodPeakRSS, err = strconv.ParseUint(l, 10, 64); err != nil {
		return err
	}
	after, err := ch.stats()
	r.FloodLiveHeap = after.HeapInuse
	return err
}

// handshake dials the child as local and times TCP connect to verdict.
func handshake(addr string, peer trust.PeerID, local *wire.Local) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t0 := time.Now()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	c, err := wire.Client(ctx, raw, local, peer)
	took := time.Since(t0)
	if err != nil {
		raw.Close()
		return 0, err
	}
	c.Close()
	return took, nil
}

func measureStall(r *hostileResult) error {
	ch, hello, err := startHostileChild()
	if err != nil {
		return err
	}
	defer ch.stop()
	locals := make([]*wire.Local, 2*stallTrials)
	for i := range locals {
		if locals[i], err = childPeer(ch); err != nil {
			return err
		}
	}
	var unloaded []time.Duration
	for _, l := range locals[:stallTrials] {
		d, err := handshake(hello.Addr, hello.Peer, l)
		if err != nil {
			return fmt.Errorf("unloaded handshake: %w", err)
		}
		unloaded = append(unloaded, d)
	}
	slices.Sort(unloaded)
	p50 := percentile(unloaded, 50)
	r.UnloadedP50Us = micros(p50)
	r.UnloadedMaxUs = micros(unloaded[len(unloaded)-1])
	for _, d := range unloaded {
		if d <= 2*p50 {
			r.UnloadedWithin++
		}
	}

	var stalled []net.Conn
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()
	for i := range stallSockets {
		c, err := net.Dial("tcp", hello.Addr)
		if err != nil {
			return err
		}
		if i%2 == 1 {
			c.Write([]byte("PN")) // slowloris: a partial preamble
		}
		stalled = append(stalled, c)
	}
	r.Stalled = stallSockets
	var loaded []time.Duration
	for _, l := range locals[stallTrials:] {
		r.Handshakes++
		d, err := handshake(hello.Addr, hello.Peer, l)
		if err != nil {
			continue
		}
		r.Succeeded++
		if d <= 2*p50 {
			r.WithinTwiceP50++
		}
		loaded = append(loaded, d)
		// Keep the attack's sockets at 256: replace one the node closed.
		c, err := net.Dial("tcp", hello.Addr)
		if err == nil {
			stalled = append(stalled, c)
		}
	}
	if len(loaded) > 0 {
		slices.Sort(loaded)
		r.AttackP50Us = micros(percentile(loaded, 50))
		r.AttackMaxUs = micros(loaded[len(loaded)-1])
	}
	return nil
}

// freezer forwards TCP to target and can freeze the connections it has:
// stop forwarding without closing them, as a link that goes silent.
type freezer struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*frozenPair
	wg     sync.WaitGroup
}

type frozenPair struct {
	a, b   net.Conn
	frozen atomic.Bool
}

func newFreezer(target string) (*freezer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &freezer{ln: ln, target: target}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

func (f *freezer) serve() {
	defer f.wg.Done()
	for {
		a, err := f.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", f.target)
		if err != nil {
			a.Close()
			continue
		}
		p := &frozenPair{a: a, b: b}
		f.mu.Lock()
		f.conns = append(f.conns, p)
		f.mu.Unlock()
		f.wg.Add(2)
		go f.pipe(p, a, b)
		go f.pipe(p, b, a)
	}
}

func (f *freezer) pipe(p *frozenPair, dst, src net.Conn) {
	defer f.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			if !p.frozen.Load() {
				dst.Close()
			}
			return
		}
		if p.frozen.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			src.Close()
			return
		}
	}
}

func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.conns {
		p.frozen.Store(true)
	}
}

func (f *freezer) close() {
	f.ln.Close()
	f.mu.Lock()
	for _, p := range f.conns {
		p.a.Close()
		p.b.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func measureLiveness(r *hostileResult) error {
	root, err := dataDirRoot()
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	cfg := func(role string) host.Config {
		name := fmt.Sprintf("bench-%s-%d", role, nodeSeq.Add(1))
		return host.Config{Name: name, DataDir: filepath.Join(root, name), PingInterval: livePing, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond}
	}
	a, err := host.Start(cfg("dialer"))
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := host.Start(cfg("acceptor"))
	if err != nil {
		return err
	}
	defer b.Close()
	if err := trustEach(a, b); err != nil {
		return err
	}
	if err := a.Expose(echoHandle, echoHandler, host.ExposeOptions{}); err != nil {
		return err
	}
	fz, err := newFreezer(b.Addr().String())
	if err != nil {
		return err
	}
	defer fz.close()
	events := make(chan host.PeerEvent, 16)
	cancel := a.Subscribe(func(e host.PeerEvent) { events <- e })
	defer cancel()
	ctx, cancelCtx := context.WithTimeout(context.Background(), time.Minute)
	defer cancelCtx()
	if err := a.Connect(ctx, b.Identity(), fz.ln.Addr().String()); err != nil {
		return err
	}
	next := func(up bool) (time.Time, error) {
		for {
			select {
			case e := <-events:
				if e.Up == up {
					return time.Now(), nil
				}
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			}
		}
	}
	if _, err := next(true); err != nil {
		return err
	}
	r.PingInterval = livePing.String()
	var down, call []time.Duration
	for range liveTrials {
		for { // calls flow before the freeze
			cctx, c := context.WithTimeout(ctx, time.Second)
			_, err := b.Call(cctx, a.Identity(), echoHandle, []byte("x"))
			c()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return err
			}
		}
		t0 := time.Now()
		fz.freeze()
		tDown, err := next(false)
		if err != nil {
			return fmt.Errorf("waiting for the down event: %w", err)
		}
		down = append(down, tDown.Sub(t0))
		tUp, err := next(true)
		if err != nil {
			return fmt.Errorf("waiting for the reconnect: %w", err)
		}
		for {
			cctx, c := context.WithTimeout(ctx, 100*time.Millisecond)
			_, err := b.Call(cctx, a.Identity(), echoHandle, []byte("x"))
			c()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("no call after the reconnect: %w", err)
			}
		}
		call = append(call, time.Since(tUp))
		r.Trials++
	}
	r.FrozenToDownMs = float64(slices.Max(down)) / float64(time.Millisecond)
	r.ReconnectToCallMs = float64(slices.Max(call)) / float64(time.Millisecond)
	return nil
}

func hostileTargets(h *hostileResult) []target {
	t := func(name, want string, ok func(*hostileResult) (float64, string, bool)) target {
		tg := target{Name: name, Want: want, Result: "SKIP"}
		if h != nil {
			var pass bool
			tg.Value, tg.Shown, pass = ok(h)
			tg.Result = passMiss(pass)
		}
		return tg
	}
	return []target{
		t("RSS, trusted peer floods a 1 MiB handler, never reads", "≤ budget + 32 MiB", func(h *hostileResult) (float64, string, bool) {
			return float64(h.FloodPeakRSS), mib(float64(h.FloodPeakRSS)) + " peak", h.FloodPeakRSS <= uint64(h.FloodBudget)+32<<20
		}),
		t("trusted handshakes that succeed, 256 sockets stalled", "≥ 99 %", func(h *hostileResult) (float64, string, bool) {
			v := 100 * float64(h.Succeeded) / float64(max(h.Handshakes, 1))
			return v, fmt.Sprintf("%.1f %%", v), v >= 99
		}),
		t("of those, within 2× unloaded p50", "all", func(h *hostileResult) (float64, string, bool) {
			v := 100 * float64(h.WithinTwiceP50) / float64(max(h.Succeeded, 1))
			return v, fmt.Sprintf("%.1f %%", v), h.WithinTwiceP50 == h.Succeeded && h.Succeeded > 0
		}),
		t("frozen link to peer-down, worst of trials", "≤ 2× ping interval", func(h *hostileResult) (float64, string, bool) {
			return h.FrozenToDownMs, fmt.Sprintf("%.0f ms", h.FrozenToDownMs), h.FrozenToDownMs <= 2*float64(livePing/time.Millisecond)
		}),
		t("reconnect to first call, worst of trials", "≤ 2× ping interval", func(h *hostileResult) (float64, string, bool) {
			return h.ReconnectToCallMs, fmt.Sprintf("%.0f ms", h.ReconnectToCallMs), h.ReconnectToCallMs <= 2*float64(livePing/time.Millisecond)
		}),
	}
}

// childBig exposes "big" on the child's node: each call allocates and
// returns size bytes, as a handler building a result would.
func childBig(n *host.Node, arg string) error {
	size, err := strconv.Atoi(arg)
	if err != nil || size < 1 {
		return fmt.Errorf("bad size %q", arg)
	}
	return n.Expose("big", host.HandlerFunc(func(context.Context, *host.Request) ([]byte, error) {
		b := make([]byte, size)
		b[0] = 1
		return b, nil
	}), host.ExposeOptions{MaxConcurrent: -1})
}
