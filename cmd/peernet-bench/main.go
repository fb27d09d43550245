// Command peernet-bench compares a PeerNet node (package host) with
// baselines over loopback, in one process and one run: a raw TCP echo with
// pipelined, id-tagged frames (a plaintext multiplexer), the same frames
// over a minimal Noise XX + ChaChaPoly connection (the Noise framing floor:
// encryption with no RPC layer), and gRPC unary calls with a pass-through
// bytes codec. PeerNet runs with its default cipher suite and, as
// "PeerNet ChaChaPoly", with ChaChaPoly forced. It reports sequential latency, calls per second and MB/s with
// 64 calls in flight on one connection, connect-to-first-reply time, and,
// for PeerNet, the cost of an idle connection measured in a child process.
//
// Its plugin section compares, side by side, the anchor (a plain go-plugin
// gRPC plugin, one unary RPC per echo, plaintext), a PeerNet call answered
// by the plugins/echo process through the node's plugin supervisor, that
// plugin called straight over its call channel, and the floor (multiplexed
// frames over a Unix socket pair to another process); it reads each
// plugin process's RSS, times a plugin's start and restart to its first
// answered call against go-plugin's (the connect case), and starts
// -plugins plugins from one binary under one peernet-host. It builds the
// plugins and peernet-host with the go command, so run it from inside the
// peernet module.
//
// Usage:
//
//	peernet-bench [-n 2000] [-d 2s] [-rounds 2] [-idle 1000] [-idle-warm 0] [-launches 10] [-plugins 100]
//	              [-only tcp,noise,grpc,peernet,peernet-chacha,idle,plugin,hostile] [-cases seq,rps,mbps,connect]
//	              [-sizes 64,4096,65536] [-json] [-cpuprofile f] [-memprofile f] [-v]
//
// Its hostile section replays attacks on a node with the default limits: a
// trusted peer that floods a 1 MiB handler and never reads (peak RSS),
// stalled anonymous sockets while trusted peers handshake, and a frozen
// link (time to the down event and from the reconnect to a call).
//
// The default run takes a few minutes on two cores. For a
// profile of PeerNet alone, for example:
//
//	peernet-bench -only peernet -cases rps -d 5s -cpuprofile rps.prof
//
// The command re-executes itself with -serve-idle to host the node whose idle
// connections are measured, and with -serve-floor to echo the plugin
// section's floor frames; those flags are not meant to be used by hand.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/peernet/peernet/wire"
)

// options are the command's flags.
type options struct {
	n           int           // sequential calls per payload size
	warm        int           // sequential warm-up calls per payload size
	dur         time.Duration // measured duration of each in-flight case
	warmDur     time.Duration // warm-up before each in-flight case
	inflight    int           // calls in flight on one connection
	connects    int           // connect-to-first-reply trials
	rounds      int           // rounds of every case; the best is reported
	launches    int           // plugin launches per kind for start-to-first-call
	manyPlugins int           // plugins one peernet-host starts at once; 0: none
	idle        int           // idle connections for the idle section
	idleWarm    int           // bytes of one call each idle client makes first; 0: none
	sections    []string      // tcp, grpc, peernet, idle, plugin, hostile
	cases       []string      // seq, rps, mbps, connect
	sizes       []int         // payload sizes of the sequential case
	json        bool
	cpuprofile  string
	memprofile  string
	verbose     bool
}

var (
	allSections = []string{"tcp", "noise", "grpc", "peernet", "peernet-chacha", "idle", "plugin", "hostile"}
	allCases    = []string{"seq", "rps", "mbps", "connect"}
)

func (o *options) has(section string) bool   { return slices.Contains(o.sections, section) }
func (o *options) does(testCase string) bool { return slices.Contains(o.cases, testCase) }

func main() {
	var o options
	var only, cases, sizes string
	var serveIdle, serveFloorFlag bool
	flag.IntVar(&o.n, "n", 2000, "sequential calls per payload size, after warm-up")
	flag.DurationVar(&o.dur, "d", 2*time.Second, "measured duration of each 64-in-flight case")
	flag.IntVar(&o.idle, "idle", 1000, "idle PeerNet connections to open for the idle section")
	flag.IntVar(&o.idleWarm, "idle-warm", 0, "bytes of one call each idle client makes before going idle (0: none), to see what a connection that carried traffic keeps")
	flag.IntVar(&o.connects, "connects", 50, "connect-to-first-reply trials (median reported)")
	flag.IntVar(&o.launches, "launches", 10, "plugin launches of each kind for start-to-first-call (median reported)")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds of every case, interleaving the systems; the best round is reported")
	flag.IntVar(&o.inflight, "inflight", 64, "calls in flight on one connection for the rps and mbps cases")
	flag.StringVar(&only, "only", strings.Join(allSections, ","), "comma list of sections to run: "+strings.Join(allSections, ","))
	flag.StringVar(&cases, "cases", strings.Join(allCases, ","), "comma list of cases for tcp, grpc and peernet: "+strings.Join(allCases, ",")+
		"; the plugin section does seq (64 B only), rps and mbps, and connect as plugin start to first reply")
	flag.StringVar(&sizes, "sizes", "64,4096,65536", "comma list of payload sizes (bytes) for the sequential case")
	flag.BoolVar(&o.json, "json", false, "print the results as JSON instead of a table")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the measured sections (not the idle child) to this file")
	flag.StringVar(&o.memprofile, "memprofile", "", "write an allocation profile to this file at the end")
	flag.BoolVar(&o.verbose, "v", false, "report progress on stderr")
	flag.IntVar(&o.manyPlugins, "plugins", 100, "plugins one peernet-host starts from one binary in the plugin section (0: skip that part)")
	flag.BoolVar(&serveIdle, "serve-idle", false, "internal: run the node of the idle section, driven over stdin/stdout")
	flag.BoolVar(&serveFloorFlag, "serve-floor", false, "internal: echo the plugin section's floor frames on descriptor 3")
	flag.Parse()

	if serveFloorFlag {
		if err := serveFloor(); err != nil {
			fmt.Fprintln(os.Stderr, "peernet-bench -serve-floor:", err)
			os.Exit(1)
		}
		return
	}

	if serveIdle {
		if err := serveIdleNode(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "peernet-bench -serve-idle:", err)
			os.Exit(1)
		}
		return
	}
	var err error
	if o.sections, err = parseList(only, allSections); err != nil {
		fmt.Fprintln(os.Stderr, "peernet-bench: -only:", err)
		os.Exit(2)
	}
	if o.cases, err = parseList(cases, allCases); err != nil {
		fmt.Fprintln(os.Stderr, "peernet-bench: -cases:", err)
		os.Exit(2)
	}
	if o.sizes, err = parseSizes(sizes); err != nil {
		fmt.Fprintln(os.Stderr, "peernet-bench: -sizes:", err)
		os.Exit(2)
	}
	if o.n < 1 || o.dur <= 0 || o.idle < 1 || o.connects < 1 || o.inflight < 1 || o.rounds < 1 || o.launches < 1 || o.manyPlugins < 0 || o.idleWarm < 0 || o.idleWarm > bulkPayload {
		fmt.Fprintln(os.Stderr, "peernet-bench: -n, -d, -idle, -connects, -inflight, -rounds and -launches must be positive; -plugins not negative; -idle-warm at most 65536")
		os.Exit(2)
	}
	o.warm = max(o.n/10, 50)
	o.warmDur = min(o.dur/4, 500*time.Millisecond)

	// An interrupt kills us the default way; the idle child then reads
	// EOF on its stdin and exits too.
	if err := run(&o); err != nil {
		fmt.Fprintln(os.Stderr, "peernet-bench:", err)
		os.Exit(1)
	}
}

func parseList(s string, known []string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(known, f) {
			return nil, fmt.Errorf("unknown name %q (want some of %s)", f, strings.Join(known, ","))
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > bulkPayload {
			return nil, fmt.Errorf("bad size %q (want 1-%d)", f, bulkPayload)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

// run measures every selected section and prints the report.
func run(o *options) error {
	rep := &report{
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS + "/" + runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		NumCPU:     runtime.NumCPU(),
		N:          o.n,
		Sizes:      o.sizes,
		Duration:   o.dur.String(),
		Inflight:   o.inflight,
		Connects:   o.connects,
		Rounds:     o.rounds,
		Launches:   o.launches,
		Started:    time.Now().UTC().Format(time.RFC3339),
		Suite:      wire.DefaultSuite().String(),
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	var systems []system
	defer func() {
		for _, s := range systems {
			s.close()
		}
	}()
	for _, s := range []struct {
		section string
		sys     func() (system, error)
	}{
		{"tcp", newTCPSystem},
		{"noise", newNoiseSystem},
		{"grpc", newGRPCSystem},
		{"peernet", newPeerNetSystem},
		{"peernet-chacha", newPeerNetChaChaSystem},
	} {
		if !o.has(s.section) {
			continue
		}
		sys, err := s.sys()
		if err != nil {
			return fmt.Errorf("%s: setting up: %w", s.section, err)
		}
		systems = append(systems, sys)
	}
	if len(systems) > 0 {
		var err error
		if rep.Systems, err = measureSystems(o, systems); err != nil {
			return err
		}
	}
	if o.has("idle") {
		o.progress("idle: %d idle PeerNet connections to a node in a child process", o.idle)
		res, err := measureIdle(o)
		if err != nil {
			return fmt.Errorf("idle: %w", err)
		}
		rep.Idle = res
	}
	if o.has("plugin") {
		o.progress("plugin: go-plugin, through node, straight, floor")
		res, err := measurePlugins(o)
		if err != nil {
			return fmt.Errorf("plugin: %w", err)
		}
		rep.Plugin = res
	}
	if o.has("hostile") {
		res, err := measureHostile(o)
		if err != nil {
			return fmt.Errorf("hostile: %w", err)
		}
		rep.Hostile = res
	}
	rep.Elapsed = time.Since(start).Round(time.Millisecond).String()
	rep.Targets = evaluateTargets(rep)
	if o.memprofile != "" {
		f, err := os.Create(o.memprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	if o.json {
		return rep.writeJSON(os.Stdout)
	}
	rep.writeTable(os.Stdout)
	return nil
}

func (o *options) progress(format string, args ...any) {
	if o.verbose {
		fmt.Fprintf(os.Stderr, "peernet-bench: "+format+"\n", args...)
	}
}
