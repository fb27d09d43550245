package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
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
	"Plugin: go-plugin = a plain go-plugin gRPC plugin, one unary RPC (protobuf BytesValue) per echo, plaintext " +
		"(no AutoMTLS) on a Unix socket; through node = a PeerNet Call from one node to another, answered by the " +
		"plugins/echo process through the server node's supervisor (host/plugin); straight = pluginclient.Client.Call " +
		"to a plugins/echo process over its call channel, no node; floor = id+length frames multiplexed over a Unix " +
		"socket pair to a child process (this command with -serve-floor) that echoes them. CPU figures add the " +
		"server process's CPU time (from /proc, 10 ms ticks). RSS is that process's VmRSS just started, before any " +
		"call (the floor's after one echo that shows it serving), and after the 64 KiB case.",
	"Plugin start to first reply: from the start of pluginclient.Launch (or go-plugin NewClient) to the first " +
		"answered 64 B echo, on a fresh process each time; a start reads and hashes the binary into a sealed copy " +
		"and checks its digest, a restart runs a copy pinned before (LaunchConfig.Pinned), as the supervisor " +
		"restarts an unchanged generation.",
	"Many plugins: a peernet-host process with that many plugin blocks of the one plugins/echo binary; times " +
		"from its exec; all running = every plugin \"running\" on the control socket (polled every 5 ms); first " +
		"answer = the node's first reply to a probe peer's call of the first plugin, whatever its status; first " +
		"served = the first such call a plugin answered. Used memory = MemTotal − MemAvailable, the whole " +
		"machine's (other work on it shows up too): the smaller of its rise from before the start and its fall " +
		"once the daemon stopped. RSS and PSS add up the daemon's and its plugins'.",
}

func (r *report) system(name string) *systemResult {
	for _, s := range r.Systems {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// ratioTarget is the target that num/den be at least limit (at most, with
// atMost); it is skipped when either was not measured (0).
func ratioTarget(name, want string, limit float64, atMost bool, num, den float64) target {
	t := target{Name: name, Want: want, Result: "SKIP"}
	if num > 0 && den > 0 {
		t.Value = num / den
		t.Shown = fmt.Sprintf("%.2f×", t.Value)
		pass := t.Value >= limit
		if atMost {
			pass = t.Value <= limit
		}
		t.Result = passMiss(pass)
	}
	return t
}

// valueOf is f(s), or 0 for a system that did not run.
func valueOf(s *systemResult, f func(*systemResult) float64) float64 {
	if s == nil {
		return 0
	}
	return f(s)
}

func evaluateTargets(r *report) []target {
	tcp, grpc, pn := r.system("raw TCP"), r.system("gRPC"), r.system("PeerNet")
	var ts []target
	ratio := func(name, want string, limit float64, atMost bool, num, den func(*systemResult) float64, base *systemResult) {
		ts = append(ts, ratioTarget(name, want, limit, atMost, valueOf(pn, num), valueOf(base, den)))
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
		ts = append(ts, ratioTarget(name, want, limit, atMost, valueOf(sys, f), valueOf(base, f)))
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
		writeSystems(w, r.Systems, r.Sizes, r.Inflight, refRatios(r.Systems, "PeerNet"))
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
		writePlugins(w, p, r.Inflight)
		fmt.Fprintln(w)
	}

	if h := r.Hostile; h != nil {
		fmt.Fprintln(w, "Hostile peers (default limits):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  flood: %d calls to a %s handler in %.1f s, never read\tpeak RSS %s\t(%s before; budget %s; live heap after GC %s; writes blocked %.1f s)\n",
			h.FloodCalls, mib(float64(h.FloodResult)), h.FloodSeconds, mib(float64(h.FloodPeakRSS)), mib(float64(h.FloodBaseRSS)), mib(float64(h.FloodBudget)), mib(float64(h.FloodLiveHeap)), h.FloodWriteWait)
		fmt.Fprintf(tw, "  %d stalled sockets: %d of %d trusted handshakes succeeded\tp50 %.0f µs, max %.0f µs\t(unloaded p50 %.0f µs; %d within 2×)\n",
			h.Stalled, h.Succeeded, h.Handshakes, h.AttackP50Us, h.AttackMaxUs, h.UnloadedP50Us, h.WithinTwiceP50)
		fmt.Fprintf(tw, "  the same handshakes unloaded\tp50 %.0f µs, max %.0f µs\t(%d within 2× their p50: the machine's own spread)\n",
			h.UnloadedP50Us, h.UnloadedMaxUs, h.UnloadedWithin)
		fmt.Fprintf(tw, "  frozen link, ping interval %s, worst of %d\tdown after %.0f ms\treconnect to first call %.0f ms\n",
			h.PingInterval, h.Trials, h.FrozenToDownMs, h.ReconnectToCallMs)
		tw.Flush()
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "Targets for PeerNet (those measured in this run; -json lists all):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range r.Targets {
		if t.Result == "SKIP" {
			continue
		}
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

// ratio is a column of the ratios of one system's figures to another's.
type ratio struct{ num, den string }

// refRatios is a ratio of the system named ref to each other system, or none
// when ref is not among them.
func refRatios(systems []*systemResult, ref string) []ratio {
	if !slices.ContainsFunc(systems, func(s *systemResult) bool { return s.Name == ref }) {
		return nil
	}
	var rs []ratio
	for _, s := range systems {
		if s.Name != ref {
			rs = append(rs, ratio{ref, s.Name})
		}
	}
	return rs
}

// writeSystems prints one table of systems, a column each, and then a
// column for each of ratios.
func writeSystems(w io.Writer, systems []*systemResult, sizes []int, inflight int, ratios []ratio) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	names := make([]string, len(systems))
	for i, s := range systems {
		names[i] = s.Name
	}
	byName := func(name string) *systemResult {
		for _, s := range systems {
			if s.Name == name {
				return s
			}
		}
		return nil
	}
	const labelWidth = 34
	header := fmt.Sprintf("%-*s\t", labelWidth, "") + strings.Join(names, "\t")
	for _, rc := range ratios {
		header += "\t" + rc.num + "/" + rc.den
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
		for _, rc := range ratios {
			if a, b := f(byName(rc.num)), f(byName(rc.den)); a > 0 && b > 0 {
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
	row("server process RSS, started (MiB)", func(s *systemResult) float64 { return float64(s.RSSIdle) / (1 << 20) }, "%.1f")
	row("  after 64 KiB case (MiB)", func(s *systemResult) float64 { return float64(s.RSSAfterBulk) / (1 << 20) }, "%.1f")
	tw.Flush()
}

// writePlugins prints the plugin section: the systems with the ratios the
// targets are about, the starts, and the many-plugin start.
func writePlugins(w io.Writer, p *pluginReport, inflight int) {
	fmt.Fprintf(w, "Plugins: echo (plugins/echo, %.1f MiB, sha256 %.12s…; binaries built in %.1f s):\n", float64(p.EchoBytes)/(1<<20), p.EchoSHA256, p.BuildSeconds)
	if len(p.Systems) > 0 {
		writeSystems(w, p.Systems, []int{smallPayload}, inflight, []ratio{
			{routedName, anchorName}, {straightName, anchorName}, {straightName, floorName},
		})
	}
	if len(p.Start) > 0 {
		fmt.Fprintf(w, "\n  start to first answered call, %d starts each:\n", p.Launches)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		base := p.start(startGoPlugin)
		for _, s := range p.Start {
			vs := ""
			if base != nil && base.P50Ms > 0 {
				vs = fmt.Sprintf("%.2f× go-plugin's", s.P50Ms/base.P50Ms)
			}
			fmt.Fprintf(tw, "  %s\tp50 %.1f ms\tmin %.1f ms\tmax %.1f ms\t%s\n", s.Name, s.P50Ms, s.MinMs, s.MaxMs, vs)
		}
		tw.Flush()
	}
	if m := p.Many; m != nil {
		fmt.Fprintf(w, "\n  %d plugins from one binary under one peernet-host (ms from its exec):\n", m.Plugins)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  control socket answers\t%.0f ms\n", m.ControlMs)
		fmt.Fprintf(tw, "  probe peer's handshake done\t%.0f ms\n", m.ConnectedMs)
		fmt.Fprintf(tw, "  node's first answer to its call\t%.0f ms\t%s\n", m.FirstAnswerMs, m.FirstAnswer)
		fmt.Fprintf(tw, "  first call a plugin answered\t%.0f ms\t(%d of %d plugins running then)\n", m.FirstServedMs, m.RunningAtServed, m.Plugins)
		fmt.Fprintf(tw, "  all %d running\t%.0f ms\t(CPU time by then: %.0f ms, %.1f ms a plugin; the daemon's %.0f ms)\n", m.Plugins, m.AllRunningMs, m.CPUms, m.CPUms/float64(m.Plugins), m.DaemonCPUms)
		fmt.Fprintf(tw, "  machine's used memory\t%+.0f MB\t(%.0f MB before → %.0f MB running → %.0f MB stopped)\n", float64(m.UsedDelta())/1e6, float64(m.UsedBefore)/1e6, float64(m.UsedAfter)/1e6, float64(m.UsedStopped)/1e6)
		fmt.Fprintf(tw, "  daemon + plugins\tRSS %.0f MB\tPSS %.0f MB\t(daemon RSS %.0f MB)\n", float64(m.RSS)/1e6, float64(m.PSS)/1e6, float64(m.DaemonRSS)/1e6)
		tw.Flush()
	}
}

// pluginTargets holds the plugin section's figures to the goals of issue
// 11, each against the baseline measured beside it in the same run.
func pluginTargets(p *pluginReport) []target {
	anchor, routed, straight, floor := p.system(anchorName), p.system(routedName), p.system(straightName), p.system(floorName)
	var ts []target
	ratio := func(name, want string, limit float64, atMost bool, num, den float64) {
		ts = append(ts, ratioTarget("plugin: "+name, want, limit, atMost, num, den))
	}
	seq64 := func(s *systemResult) float64 { v, _ := s.seq(smallPayload); return v.P50Us }
	rps := func(s *systemResult) float64 { return s.CallsPerSec }
	mbps := func(s *systemResult) float64 { return s.MBPerSec }
	idle := func(s *systemResult) float64 { return float64(s.RSSIdle) }
	bulk := func(s *systemResult) float64 { return float64(s.RSSAfterBulk) }
	ratio("64×64 B calls/s, through node vs go-plugin", "≥ 4×", 4, false, valueOf(routed, rps), valueOf(anchor, rps))
	ratio("64×64 B calls/s, straight vs floor", "≥ 0.5×", 0.5, false, valueOf(straight, rps), valueOf(floor, rps))
	ratio("sequential 64 B p50, through node vs go-plugin", "≤ 1×", 1, true, valueOf(routed, seq64), valueOf(anchor, seq64))
	ratio("sequential 64 B p50, straight vs floor", "≤ 1.5×", 1.5, true, valueOf(straight, seq64), valueOf(floor, seq64))
	ratio("64×64 KiB MB/s, through node vs go-plugin", "≥ 2×", 2, false, valueOf(routed, mbps), valueOf(anchor, mbps))
	ratio("64×64 KiB MB/s, straight vs go-plugin", "≥ 2×", 2, false, valueOf(straight, mbps), valueOf(anchor, mbps))
	startP50 := func(name string) float64 {
		if s := p.start(name); s != nil {
			return s.P50Ms
		}
		return 0
	}
	ratio("start → first reply (digest checked) vs go-plugin's", "≤ 1×", 1, true, startP50(startLaunch), startP50(startGoPlugin))
	ratio("restart → first reply vs go-plugin's start", "≤ 0.8×", 0.8, true, startP50(startRestart), startP50(startGoPlugin))
	ratio("plugin RSS started, node's plugin vs go-plugin's", "≤ 1×", 1, true, valueOf(routed, idle), valueOf(anchor, idle))
	ratio("plugin RSS after 64 KiB, node's plugin vs go-plugin's", "≤ 1×", 1, true, valueOf(routed, bulk), valueOf(anchor, bulk))
	ratio("plugin RSS after 64 KiB, straight vs go-plugin's", "≤ 1×", 1, true, valueOf(straight, bulk), valueOf(anchor, bulk))

	many := func(name, want string, ok func(m *manyResult) (float64, string, bool)) {
		t := target{Name: "plugin: " + name, Want: want, Result: "SKIP"}
		if p != nil && p.Many != nil {
			var pass bool
			t.Value, t.Shown, pass = ok(p.Many)
			t.Result = passMiss(pass)
		}
		ts = append(ts, t)
	}
	n := 100
	if p != nil && p.Many != nil {
		n = p.Many.Plugins
	}
	many(fmt.Sprintf("%d plugins all running", n), "≤ 2 s", func(m *manyResult) (float64, string, bool) {
		return m.AllRunningMs, fmt.Sprintf("%.2f s", m.AllRunningMs/1000), m.AllRunningMs <= 2000
	})
	many("plugins running when a peer is first served", "< all", func(m *manyResult) (float64, string, bool) {
		early := m.FirstServedMs > 0 && m.RunningAtServed < m.Plugins
		return float64(m.RunningAtServed), fmt.Sprintf("%d of %d", m.RunningAtServed, m.Plugins), early
	})
	many(fmt.Sprintf("machine's used memory for %d plugins", n), "≤ 390 MB", func(m *manyResult) (float64, string, bool) {
		d := float64(m.UsedDelta())
		return d, fmt.Sprintf("%.0f MB", d/1e6), d <= 390e6
	})
	return ts
}
