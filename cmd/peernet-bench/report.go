package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// report is everything one run measured; -json prints it as it is.
type report struct {
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	NumCPU     int    `json:"num_cpu"`
	N          int    `json:"n"`
	Sizes      []int  `json:"sizes"`
	Duration   string `json:"duration"`
	Inflight   int    `json:"inflight"`
	Connects   int    `json:"connects"`
	Rounds     int    `json:"rounds"`
	Launches   int    `json:"launches"`
	Started    string `json:"started"`
	Elapsed    string `json:"elapsed"`
	// Suite is the cipher suite of the PeerNet system: what a node offers
	// on this CPU by default.
	Suite   string          `json:"peernet_suite"`
	Systems []*systemResult `json:"systems"`
	Idle    *idleResult     `json:"idle,omitempty"`
	Plugin  *pluginReport   `json:"plugin,omitempty"`
	Hostile *hostileResult  `json:"hostile,omitempty"`
	Targets []target        `json:"targets"`
	Notes   []string        `json:"notes"`
}

// target is one goal PeerNet's figures are held to.
type target struct {
	Name   string  `json:"name"`
	Want   string  `json:"want"`
	Value  float64 `json:"value"` // a ratio to the baseline, or a figure
	Shown  string  `json:"shown"`
	Result string  `json:"result"` // PASS, MISS, or SKIP when not measured
}

var notes = []string{
	"All three run in this one process over 127.0.0.1; client and server share its CPUs.",
	"raw TCP: unencrypted, unauthenticated id+length frames, pipelined on one connection; the floor.",
	"gRPC: unary calls over one ClientConn, insecure credentials, with a pass-through []byte codec " +
		"(no protobuf generated, marshalled or parsed): a stricter baseline than a protobuf service.",
	"Noise floor: the raw TCP frames over a minimal Noise_XX_25519_ChaChaPoly_BLAKE2s connection (flynn/noise, " +
		"no identities or trust check) in the records of docs/protocol.md §4: encryption with no RPC layer.",
	"PeerNet: host.Node.Call to an in-process echo handler (MaxConcurrent -1) on an authenticated, " +
		"encrypted connection with the suite a node offers by default on this CPU (peernet_suite); " +
		"context.Background, so the default call timeout applies. PeerNet ChaChaPoly: the same with ChaChaPoly forced.",
	"MB/s counts payload bytes (10^6) per second in each direction.",
	"CPU per call/MB: this process's user+system CPU time over the measured window divided by the calls " +
		"(or MB): client and server together; less disturbed by other load on the machine than the rates.",
	"Connect: raw TCP = dial + first echo; gRPC = NewClient + first call (dials lazily); " +
		"PeerNet = Node.Connect (TCP + Noise XX + trust check) + first Call, from a freshly started node.",
	"Idle: the accepting node runs in a child process; per-connection figures are its growth after GC " +
		"divided by the number of connections.",
	"Plugin: in-process = PeerNet Call between two nodes to a Go handler; plugin = the same Call answered by the " +
		"plugins/echo process through the server node's supervisor (host/plugin); plugin stream = pluginclient.Client.Call " +
		"to a plugins/echo process, no node; go-plugin unary = a plain go-plugin gRPC plugin, one unary RPC " +
		"(protobuf BytesValue) per echo, same transport (plaintext gRPC, Unix socket). The first two cross a PeerNet " +
		"connection, the last two do not. CPU figures add the plugin process's CPU time (from /proc, 10 ms ticks).",
	"Plugin start to first call: from the start of pluginclient.Launch (or go-plugin NewClient) to the first " +
		"answered 64 B echo, on a fresh process each time; with the checksum on, Launch hashes the binary first, " +
		"as the supervisor always does.",
}

func (r *report) system(name string) *systemResult {
	for _, s := range r.Systems {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func evaluateTargets(r *report) []target {
	tcp, grpc, pn := r.system("raw TCP"), r.system("gRPC"), r.system("PeerNet")
	var ts []target
	ratio := func(name, want string, limit float64, atMost bool, num, den func(*systemResult) float64, base *systemResult) {
		t := target{Name: name, Want: want, Result: "SKIP"}
		if pn != nil && base != nil && num(pn) > 0 && den(base) > 0 {
			t.Value = num(pn) / den(base)
			t.Shown = fmt.Sprintf("%.2f×", t.Value)
			pass := t.Value >= limit
			if atMost {
				pass = t.Value <= limit
			}
			t.Result = passMiss(pass)
		}
		ts = append(ts, t)
	}
	seq64 := func(s *systemResult) float64 { v, _ := s.seq(smallPayload); return v.P50Us }
	rps := func(s *systemResult) float64 { return s.CallsPerSec }
	mbps := func(s *systemResult) float64 { return s.MBPerSec }
	ratio("sequential 64 B p50 vs gRPC", "≤ 0.8×", 0.8, true, seq64, seq64, grpc)
	ratio("sequential 64 B p50 vs raw TCP", "≤ 1.5×", 1.5, true, seq64, seq64, tcp)
	ratio("64 in flight, 64 B calls/s vs gRPC", "≥ 3×", 3, false, rps, rps, grpc)
	ratio("64 in flight, 64 B calls/s vs raw TCP", "≥ 0.5×", 0.5, false, rps, rps, tcp)
	ratio("64 in flight, 64 KiB MB/s vs gRPC", "≥ 1×", 1, false, mbps, mbps, grpc)
	ts = append(ts, suiteTargets(r)...)

	ts = append(ts, pluginTargets(r.Plugin)...)
	ts = append(ts, hostileTargets(r.Hostile)...)

	idle := func(name, want string, ok func(*idleResult) (float64, string, bool)) {
		t := target{Name: name, Want: want, Result: "SKIP"}
		if r.Idle != nil {
			var pass bool
			t.Value, t.Shown, pass = ok(r.Idle)
			t.Result = passMiss(pass)
		}
		ts = append(ts, t)
	}
	idle("goroutines per idle connection", "≤ 2", func(i *idleResult) (float64, string, bool) {
		return i.GoroutinesPerConn, fmt.Sprintf("%.2f", i.GoroutinesPerConn), i.GoroutinesPerConn <= 2
	})
	idle("heap+stack per idle connection", "≤ 64 KiB", func(i *idleResult) (float64, string, bool) {
		return i.BytesPerConn, kib(i.BytesPerConn), i.BytesPerConn <= 64<<10
	})
	idle("RSS with 1,000 idle connections", "≤ 100 MiB", func(i *idleResult) (float64, string, bool) {
		s := mib(float64(i.RSSAt1000))
		if i.Projected {
			s += " (projected)"
		}
		return float64(i.RSSAt1000), s, i.RSSAt1000 <= 100<<20
	})
	return ts
}

// suiteTargets holds the bulk path to the Noise framing floor and the
// plaintext multiplexer, and the small-call and handshake figures of the
// default suite to those of ChaChaPoly, the only suite before protocol
// version 2, measured in the same run.
func suiteTargets(r *report) []target {
	tcp, floor := r.system("raw TCP"), r.system("Noise floor")
	pn, chacha := r.system("PeerNet"), r.system(peerNetChaChaName)
	var ts []target
	ratio := func(name, want string, limit float64, atMost bool, sys, base *systemResult, f func(*systemResult) float64) {
		t := target{Name: name, Want: want, Result: "SKIP"}
		if sys != nil && base != nil && f(sys) > 0 && f(base) > 0 {
			t.Value = f(sys) / f(base)
			t.Shown = fmt.Sprintf("%.2f×", t.Value)
			pass := t.Value >= limit
			if atMost {
				pass = t.Value <= limit
			}
			t.Result = passMiss(pass)
		}
		ts = append(ts, t)
	}
	mbps := func(s *systemResult) float64 { return s.MBPerSec }
	seq := func(size int) func(*systemResult) float64 {
		return func(s *systemResult) float64 { v, _ := s.seq(size); return v.P50Us }
	}
	rps := func(s *systemResult) float64 { return s.CallsPerSec }
	conn := func(s *systemResult) float64 { return s.ConnectUs }
	suite := r.Suite
	ratio("64 in flight, 64 KiB MB/s ("+suite+") vs Noise floor", "≥ 1.3×", 1.3, false, pn, floor, mbps)
	ratio("64 in flight, 64 KiB MB/s ("+suite+") vs raw TCP", "≥ 0.6×", 0.6, false, pn, tcp, mbps)
	ratio("64 in flight, 64 KiB MB/s (ChaChaPoly) vs Noise floor", "≥ 0.9×", 0.9, false, chacha, floor, mbps)
	ratio("sequential 64 KiB p50 ("+suite+") vs Noise floor", "≤ 1×", 1, true, pn, floor, seq(bulkPayload))
	ratio("sequential 64 B p50 ("+suite+") vs ChaChaPoly", "≤ 1.05×", 1.05, true, pn, chacha, seq(smallPayload))
	ratio("64 in flight, 64 B calls/s ("+suite+") vs ChaChaPoly", "≥ 0.95×", 0.95, false, pn, chacha, rps)
	ratio("connect + first reply p50 ("+suite+") vs ChaChaPoly", "≤ 1.05×", 1.05, true, pn, chacha, conn)
	return ts
}

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }
func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func (r *report) writeJSON(w io.Writer) error {
	r.Notes = notes
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "PeerNet comparative benchmark: %s %s, GOMAXPROCS=%d (%d CPUs), loopback 127.0.0.1, took %s\n",
		r.GoVersion, r.OS, r.GOMAXPROCS, r.NumCPU, r.Elapsed)
	fmt.Fprintf(w, "PeerNet's suite on this CPU: %s\n", r.Suite)
	fmt.Fprintf(w, "-n %d sequential calls per size, %d in flight for %s, connect median of %d; best of %d round(s)\n\n",
		r.N, r.Inflight, r.Duration, r.Connects, r.Rounds)

	if len(r.Systems) > 0 {
		writeSystems(w, r.Systems, r.Sizes, r.Inflight, "PeerNet")
		fmt.Fprintln(w)
	}

	if i := r.Idle; i != nil {
		warm := ""
		if i.WarmCall > 0 {
			warm = fmt.Sprintf(", each after one %d-byte call", i.WarmCall)
		}
		fmt.Fprintf(w, "PeerNet idle connections (accepting node in a child process, %d raw wire clients%s):\n", i.Conns, warm)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  goroutines per connection\t%.2f\t(%d -> %d)\n", i.GoroutinesPerConn, i.Before.Goroutines, i.After.Goroutines)
		fmt.Fprintf(tw, "  HeapInuse+StackInuse per connection\t%s\t(heap %s, stack %s in total)\n", kib(i.BytesPerConn),
			mib(float64(i.After.HeapInuse)-float64(i.Before.HeapInuse)), mib(float64(i.After.StackInuse)-float64(i.Before.StackInuse)))
		fmt.Fprintf(tw, "  Sys per connection\t%s\t\n", kib(i.SysPerConn))
		fmt.Fprintf(tw, "  RSS per connection\t%s\t\n", kib(i.RSSPerConn))
		fmt.Fprintf(tw, "  RSS with %d connections\t%s\t(%s before they opened)\n", i.Conns, mib(float64(i.RSS)), mib(float64(i.BaseRSS)))
		fmt.Fprintf(tw, "  opening them (8 dialers)\t%.2f s\t(%.0f handshakes/s)\n", i.OpenSeconds, float64(i.Conns)/i.OpenSeconds)
		tw.Flush()
		fmt.Fprintln(w)
	}

	if p := r.Plugin; p != nil {
		fmt.Fprintf(w, "Plugins: 64 B echo (plugins/echo, %.1f MiB, sha256 %.12s…; binaries built in %.1f s):\n", float64(p.EchoBytes)/(1<<20), p.EchoSHA256, p.BuildSeconds)
		if len(p.Systems) > 0 {
			writeSystems(w, p.Systems, []int{smallPayload}, r.Inflight, pluginRoutedName)
		}
		if len(p.Start) > 0 {
			fmt.Fprintf(w, "\n  plugin start to first answered call, %d launches each:\n", p.Launches)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, s := range p.Start {
				fmt.Fprintf(tw, "  %s\tp50 %.1f ms\tmin %.1f ms\tmax %.1f ms\n", s.Name, s.P50Ms, s.MinMs, s.MaxMs)
			}
			tw.Flush()
		}
		fmt.Fprintln(w)
	}

	if h := r.Hostile; h != nil {
		fmt.Fprintln(w, "Hostile peers (default limits):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  flood: %d calls to a %s handler in %.1f s, never read\tpeak RSS %s\t(%s before; budget %s; live heap after GC %s; writes blocked %.1f s)\n",
			h.FloodCalls, mib(float64(h.FloodResult)), h.FloodSeconds, mib(float64(h.FloodPeakRSS)), mib(float64(h.FloodBaseRSS)), mib(float64(h.FloodBudget)), mib(float64(h.FloodLiveHeap)), h.FloodWriteWait)
		fmt.Fprintf(tw, "  %d stalled sockets: %d of %d trusted handshakes succeeded\tp50 %.0f µs, max %.0f µs\t(unloaded p50 %.0f µs; %d within 2×)\n",
			h.Stalled, h.Succeeded, h.Handshakes, h.AttackP50Us, h.AttackMaxUs, h.UnloadedP50Us, h.WithinTwiceP50)
		fmt.Fprintf(tw, "  frozen link, ping interval %s, worst of %d\tdown after %.0f ms\treconnect to first call %.0f ms\n",
			h.PingInterval, h.Trials, h.FrozenToDownMs, h.ReconnectToCallMs)
		tw.Flush()
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "Targets for PeerNet:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range r.Targets {
		shown := t.Shown
		if shown == "" {
			shown = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", t.Name, t.Want, shown, t.Result)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Notes:")
	for _, n := range notes {
		fmt.Fprintln(w, "  - "+n)
	}
}

func sizeName(size int) string {
	if size >= 1<<10 && size%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", size>>10)
	}
	return fmt.Sprintf("%d B", size)
}

// writeSystems prints one table of systems, with a column of ratios of the
// system named ref to each other system when ref is among them.
func writeSystems(w io.Writer, systems []*systemResult, sizes []int, inflight int, ref string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	names := make([]string, len(systems))
	var refSys *systemResult
	for i, s := range systems {
		names[i] = s.Name
		if s.Name == ref {
			refSys = s
		}
	}
	var ratioCols []*systemResult
	if refSys != nil {
		for _, s := range systems {
			if s != refSys {
				ratioCols = append(ratioCols, s)
			}
		}
	}
	const labelWidth = 34
	header := fmt.Sprintf("%-*s\t", labelWidth, "") + strings.Join(names, "\t")
	for _, s := range ratioCols {
		header += "\t" + ref + "/" + s.Name
	}
	fmt.Fprintln(tw, header+"\t")
	row := func(label string, f func(*systemResult) float64, format string) {
		line := fmt.Sprintf("%-*s", labelWidth, label)
		any := false
		for _, s := range systems {
			v := f(s)
			if v > 0 {
				any = true
				line += "\t" + fmt.Sprintf(format, v)
			} else {
				line += "\t-"
			}
		}
		for _, s := range ratioCols {
			if a, b := f(refSys), f(s); a > 0 && b > 0 {
				line += fmt.Sprintf("\t%.2f×", a/b)
			} else {
				line += "\t-"
			}
		}
		if any {
			fmt.Fprintln(tw, line+"\t")
		}
	}
	for _, size := range sizes {
		sz := sizeName(size)
		row("sequential "+sz+" p50 (µs)", func(s *systemResult) float64 { v, _ := s.seq(size); return v.P50Us }, "%.1f")
		row("sequential "+sz+" p99 (µs)", func(s *systemResult) float64 { v, _ := s.seq(size); return v.P99Us }, "%.1f")
		row("  CPU per call (µs)", func(s *systemResult) float64 { v, _ := s.seq(size); return v.CPUUs }, "%.1f")
	}
	row(fmt.Sprintf("%d in flight, 64 B (calls/s)", inflight), func(s *systemResult) float64 { return s.CallsPerSec }, "%.0f")
	row("  CPU per call (µs)", func(s *systemResult) float64 { return s.CPUPerCallUs }, "%.2f")
	row(fmt.Sprintf("%d in flight, 64 KiB (MB/s)", inflight), func(s *systemResult) float64 { return s.MBPerSec }, "%.0f")
	row("  CPU per MB (µs)", func(s *systemResult) float64 { return s.CPUPerMBUs }, "%.0f")
	row("connect + first reply p50 (µs)", func(s *systemResult) float64 { return s.ConnectUs }, "%.0f")
	row("connect + first reply min (µs)", func(s *systemResult) float64 { return s.ConnectMin }, "%.0f")
	tw.Flush()
}

// pluginTargets holds the plugin section's figures to its goals, against the
// anchor (a plain go-plugin unary plugin) where the goal is relative.
func pluginTargets(p *pluginReport) []target {
	routed, anchor := p.system(pluginRoutedName), p.system(anchorName)
	seq64 := func(s *systemResult) float64 { v, _ := s.seq(smallPayload); return v.P50Us }
	lat := target{Name: "plugin: sequential 64 B p50 vs go-plugin unary", Want: "≤ +25 µs", Result: "SKIP"}
	if routed != nil && anchor != nil && seq64(routed) > 0 && seq64(anchor) > 0 {
		lat.Value = seq64(routed) - seq64(anchor)
		lat.Shown = fmt.Sprintf("%+.1f µs", lat.Value)
		lat.Result = passMiss(lat.Value <= 25)
	}
	rps := target{Name: "plugin: 64 in flight, 64 B calls/s vs go-plugin unary", Want: "≥ 2×", Result: "SKIP"}
	if routed != nil && anchor != nil && routed.CallsPerSec > 0 && anchor.CallsPerSec > 0 {
		rps.Value = routed.CallsPerSec / anchor.CallsPerSec
		rps.Shown = fmt.Sprintf("%.2f×", rps.Value)
		rps.Result = passMiss(rps.Value >= 2)
	}
	start := target{Name: "plugin: start to first call (p50, checksum on)", Want: "≤ 10 ms", Result: "SKIP"}
	if s := p.start(startPeerNet); s != nil {
		start.Value = s.P50Ms
		start.Shown = fmt.Sprintf("%.1f ms", s.P50Ms)
		start.Result = passMiss(s.P50Ms <= 10)
	}
	return []target{lat, rps, start}
}
