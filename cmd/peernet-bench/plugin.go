package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/peernet/peernet/cmd/peernet-bench/internal/unaryecho"
	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/host/plugin"
	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/pluginclient"
)

// The plugin section compares, in one run, a plugin's echo served four ways:
//
//	go-plugin     the anchor: a plain go-plugin gRPC plugin, one unary RPC
//	              per echo (internal/unaryecho), plaintext gRPC on a Unix
//	              socket, no AutoMTLS
//	through node  a PeerNet Call from one node to another, answered by the
//	              plugins/echo process through the server node's plugin
//	              supervisor
//	straight      pluginclient.Client.Call straight to a plugins/echo
//	              process over its call channel, no node
//	floor         raw multiplexed frames (id, length, payload) over a Unix
//	              socket pair to another process (floor.go)
//
// with sequential 64 B calls, 64 calls of 64 B and of 64 KiB in flight, and
// each plugin process's RSS; it times a plugin's start and restart to its
// first answered call against go-plugin's start, and starts many plugins at
// once from one binary under one peernet-host (many.go). The binaries are
// built with the go command when the section starts.
const (
	echoPluginPkg   = "github.com/peernet/peernet/plugins/echo"
	anchorPluginPkg = "github.com/peernet/peernet/cmd/peernet-bench/internal/unaryechoplugin"
	hostPkg         = "github.com/peernet/peernet/cmd/peernet-host"

	// Names of the section's systems, as reported.
	anchorName   = "go-plugin"
	routedName   = "through node"
	straightName = "straight"
	floorName    = "floor"
)

// pluginReport is what the plugin section measured.
type pluginReport struct {
	Systems []*systemResult `json:"systems"`
	// Start is the start-to-first-reply figure of each way of starting.
	Start    []startResult `json:"start_to_first_reply,omitempty"`
	Launches int           `json:"launches"`
	// Many is the start of many plugins under one peernet-host.
	Many *manyResult `json:"many,omitempty"`
	// EchoBinary is the plugins/echo binary's size and SHA-256.
	EchoBytes  int64  `json:"echo_binary_bytes"`
	EchoSHA256 string `json:"echo_binary_sha256"`
	// BuildSeconds is how long building the binaries took.
	BuildSeconds float64 `json:"build_seconds"`
}

// startResult is the time from starting a plugin to its first answer.
type startResult struct {
	Name  string  `json:"name"`
	P50Ms float64 `json:"p50_ms"`
	MinMs float64 `json:"min_ms"`
	MaxMs float64 `json:"max_ms"`
}

func (r *pluginReport) system(name string) *systemResult {
	if r == nil {
		return nil
	}
	for _, s := range r.Systems {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (r *pluginReport) start(name string) *startResult {
	if r == nil {
		return nil
	}
	for i := range r.Start {
		if r.Start[i].Name == name {
			return &r.Start[i]
		}
	}
	return nil
}

// pluginBinaries are the executables the section runs.
type pluginBinaries struct {
	dir       string // temporary; holds them and the sockets' directory
	echo      string
	echoSum   string
	anchor    string
	host      string // peernet-host; "" when not built
	socketDir string // short and private, for go-plugin's Unix sockets
}

// buildPlugins builds plugins/echo, the anchor and, if withHost,
// peernet-host into a new temporary directory and hashes the echo binary.
// The caller removes b.dir.
func buildPlugins(o *options, withHost bool) (*pluginBinaries, error) {
	dir, err := os.MkdirTemp("", "pnb")
	if err != nil {
		return nil, err
	}
	b := &pluginBinaries{dir: dir, echo: filepath.Join(dir, "echo"), anchor: filepath.Join(dir, "unaryecho"), socketDir: filepath.Join(dir, "s")}
	builds := []struct{ out, pkg string }{{b.echo, echoPluginPkg}, {b.anchor, anchorPluginPkg}}
	if withHost {
		b.host = filepath.Join(dir, "peernet-host")
		builds = append(builds, struct{ out, pkg string }{b.host, hostPkg})
	}
	src := moduleDir()
	for _, t := range builds {
		o.progress("plugin: go build %s", t.pkg)
		cmd := exec.Command("go", "build", "-o", t.out, t.pkg)
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("building %s (in %q; run the bench from inside the peernet module): %v\n%s", t.pkg, src, err, out)
		}
	}
	if b.echoSum, err = fileSHA256(b.echo); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.MkdirAll(b.socketDir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return b, nil
}

// moduleDir guesses the peernet module's directory from where this file was
// compiled; "" (the working directory) when that is not on this machine.
func moduleDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return ""
	}
	return dir
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// measurePlugins runs the plugin section.
func measurePlugins(o *options) (*pluginReport, error) {
	t0 := time.Now()
	bins, err := buildPlugins(o, o.manyPlugins > 0)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(bins.dir)
	rep := &pluginReport{Launches: o.launches, EchoSHA256: bins.echoSum, BuildSeconds: time.Since(t0).Seconds()}
	if fi, err := os.Stat(bins.echo); err == nil {
		rep.EchoBytes = fi.Size()
	}

	// The sequential (64 B only) and in-flight cases, with the measuring
	// code of the other sections; the connect case is replaced by the
	// starts below.
	po := *o
	po.sizes = []int{smallPayload}
	po.cases = slices.DeleteFunc(slices.Clone(o.cases), func(c string) bool { return c == "connect" })
	if len(po.cases) > 0 {
		if err := measurePluginSystems(&po, bins, rep); err != nil {
			return nil, err
		}
	}
	if o.does("connect") {
		if rep.Start, err = measureStarts(o, bins); err != nil {
			return nil, err
		}
	}
	if o.manyPlugins > 0 {
		if rep.Many, err = measureMany(o, bins); err != nil {
			return nil, fmt.Errorf("%d plugins: %w", o.manyPlugins, err)
		}
	}
	return rep, nil
}

// measurePluginSystems sets up the four systems, reads each server
// process's RSS (just started, no call made yet), runs the cases, and reads
// the RSS again (after the last 64 KiB case).
func measurePluginSystems(o *options, bins *pluginBinaries, rep *pluginReport) error {
	var systems []system
	defer func() {
		for _, s := range systems {
			s.close()
		}
	}()
	for _, s := range []struct {
		name string
		sys  func(*pluginBinaries) (system, error)
	}{
		{anchorName, newAnchorSystem},
		{routedName, newPluginRoutedSystem},
		{straightName, newPluginStraightSystem},
		{floorName, newFloorSystem},
	} {
		sys, err := s.sys(bins)
		if err != nil {
			return fmt.Errorf("%s: setting up: %w", s.name, err)
		}
		sys.name = s.name
		systems = append(systems, sys)
	}
	idle := make([]int64, len(systems))
	for i, sys := range systems {
		idle[i] = processRSS(sys.childPID())
	}
	var err error
	if rep.Systems, err = measureSystems(o, systems); err != nil {
		return err
	}
	for i, sys := range systems {
		rep.Systems[i].RSSIdle = idle[i]
		if o.does("mbps") {
			rep.Systems[i].RSSAfterBulk = processRSS(sys.childPID())
		}
	}
	return nil
}

// newPluginRoutedSystem starts two nodes; the server runs plugins/echo
// under a supervisor, which exposes the plugin's echo handle (no
// concurrency cap, as the peernet section's in-process handler).
func newPluginRoutedSystem(b *pluginBinaries) (system, error) {
	var sup *plugin.Supervisor
	p, err := startNodePair(0, func(server *host.Node) error {
		var err error
		sup, err = plugin.NewSupervisor(plugin.SupervisorConfig{Node: server})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return sup.Apply(ctx, []plugin.Config{{
			Name:    "echo",
			Path:    b.echo,
			SHA256:  b.echoSum,
			Handles: []plugin.Handle{{Name: echoHandle, ExposeOptions: host.ExposeOptions{MaxConcurrent: -1}}},
		}})
	})
	if err != nil {
		if sup != nil {
			sup.Close()
		}
		return system{}, err
	}
	return system{
		client: peerNetClient{p.client, p.server.Identity()},
		close: func() {
			sup.Close()
			p.close()
		},
		childPID: func() int {
			if st := sup.Status(); len(st) == 1 {
				return st[0].Pid
			}
			return 0
		},
	}, nil
}

// launchEcho starts plugins/echo through pluginclient, as the supervisor
// does: from pin, a copy pinned before (a restart), or, with pin nil, by
// reading and hashing the binary and checking its digest (a first start).
func launchEcho(ctx context.Context, b *pluginBinaries, pin *pluginclient.Pinned) (*pluginclient.Client, error) {
	return pluginclient.Launch(ctx, pluginclient.LaunchConfig{
		Name:   "echo",
		Path:   b.echo,
		SHA256: b.echoSum,
		Pinned: pin,
	})
}

// stopPlugin stops c, giving calls in flight (there are none) a moment.
func stopPlugin(c *pluginclient.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Stop(ctx)
}

type straightClient struct{ c *pluginclient.Client }

func (s straightClient) echo(ctx context.Context, p []byte) ([]byte, error) {
	return s.c.Call(ctx, &pluginsdk.Request{Handle: echoHandle, Kind: pluginsdk.KindCall, Args: p})
}

// newPluginStraightSystem launches plugins/echo and calls it directly.
func newPluginStraightSystem(b *pluginBinaries) (system, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := launchEcho(ctx, b, nil)
	if err != nil {
		return system{}, err
	}
	return system{
		client:   straightClient{c},
		close:    func() { stopPlugin(c) },
		childPID: c.Pid,
	}, nil
}

// newFloorSystem starts the floor's echo process (floor.go).
func newFloorSystem(*pluginBinaries) (system, error) {
	f, err := startFloor()
	if err != nil {
		return system{}, err
	}
	return system{client: f.client, close: f.close, childPID: f.pid}, nil
}

// anchor is a running go-plugin unary echo plugin.
type anchor struct {
	gp   *goplugin.Client
	conn *grpc.ClientConn
}

func (a *anchor) echo(ctx context.Context, p []byte) ([]byte, error) {
	return unaryecho.Echo(ctx, a.conn, p)
}

func (a *anchor) pid() int {
	if rc := a.gp.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// startAnchor launches the anchor the way pluginclient launches a PeerNet
// plugin: gRPC only, plaintext (AutoMTLS off, and with SkipHostEnv no
// PLUGIN_CLIENT_CERT can reach the plugin from this process's environment,
// so go-plugin's server does not turn TLS on either), Unix sockets in the
// same directory, the process killed if this one dies (on Linux).
func startAnchor(b *pluginBinaries) (*anchor, error) {
	cmd := exec.Command(b.anchor)
	setPdeathsig(cmd)
	gp := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  unaryecho.Handshake(),
		Plugins:          goplugin.PluginSet{unaryecho.PluginName: unaryecho.Plugin{}},
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         false,
		SkipHostEnv:      true,
		UnixSocketConfig: &goplugin.UnixSocketConfig{TempDir: b.socketDir},
		Logger:           hclog.NewNullLogger(),
	})
	rpc, err := gp.Client()
	if err != nil {
		gp.Kill()
		return nil, err
	}
	raw, err := rpc.Dispense(unaryecho.PluginName)
	if err != nil {
		gp.Kill()
		return nil, err
	}
	return &anchor{gp: gp, conn: raw.(*grpc.ClientConn)}, nil
}

func newAnchorSystem(b *pluginBinaries) (system, error) {
	a, err := startAnchor(b)
	if err != nil {
		return system{}, err
	}
	return system{client: a, close: a.gp.Kill, childPID: a.pid}, nil
}

// Ways of starting timed by measureStarts.
const (
	startLaunch   = "PeerNet start (Launch, digest checked)"
	startRestart  = "PeerNet restart (Launch from Pinned)"
	startGoPlugin = "go-plugin start (NewClient, Dispense)"
)

// measureStarts starts each kind of plugin o.launches times, interleaved,
// and times each from the start to the first answered 64-byte echo.
// Stopping the plugin is not timed. A start reads and hashes the binary
// into a fresh sealed copy, as Apply does for a new digest; a restart runs
// the copy pinned once before the loop, as the supervisor restarts an
// unchanged generation.
func measureStarts(o *options, b *pluginBinaries) ([]startResult, error) {
	ctx := context.Background()
	p := payload(smallPayload)
	var pins pluginclient.PinCache
	held, err := pins.Pin(b.echo, b.echoSum)
	if err != nil {
		return nil, err
	}
	defer held.Release()
	kinds := []struct {
		name  string
		start func() (time.Duration, func(), error)
	}{
		{startGoPlugin, func() (time.Duration, func(), error) {
			t0 := time.Now()
			a, err := startAnchor(b)
			if err != nil {
				return 0, nil, err
			}
			r, err := a.echo(ctx, p)
			d := time.Since(t0)
			if err == nil {
				err = checkEcho(r, p)
			}
			return d, a.gp.Kill, err
		}},
		{startLaunch, func() (time.Duration, func(), error) { return startEchoFirstCall(ctx, b, nil, p) }},
		{startRestart, func() (time.Duration, func(), error) { return startEchoFirstCall(ctx, b, held, p) }},
	}
	times := make([][]time.Duration, len(kinds))
	for i := range o.launches {
		for k, kind := range kinds {
			o.progress("plugin: start to first reply, %s (%d of %d)", kind.name, i+1, o.launches)
			runtime.GC()
			d, stop, err := kind.start()
			if stop != nil {
				stop()
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", kind.name, err)
			}
			times[k] = append(times[k], d)
		}
	}
	out := make([]startResult, len(kinds))
	for k, kind := range kinds {
		ds := times[k]
		out[k] = startResult{Name: kind.name, P50Ms: millis(percentile(ds, 50)), MinMs: millis(slices.Min(ds)), MaxMs: millis(slices.Max(ds))}
	}
	return out, nil
}

// startEchoFirstCall launches plugins/echo (from pin, if not nil) and makes
// one call; it returns the time both took and a func that stops the plugin.
func startEchoFirstCall(ctx context.Context, b *pluginBinaries, pin *pluginclient.Pinned, p []byte) (time.Duration, func(), error) {
	t0 := time.Now()
	c, err := launchEcho(ctx, b, pin)
	if err != nil {
		return 0, nil, err
	}
	r, err := straightClient{c}.echo(ctx, p)
	d := time.Since(t0)
	if err == nil {
		err = checkEcho(r, p)
	}
	return d, func() { stopPlugin(c) }, err
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
