package main

import (
	"bytes"
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
	"strconv"
	"strings"
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

// The plugin section compares, in one run, a 64-byte echo served four ways:
//
//	in-process       PeerNet Call from one node to another, answered by a
//	                 Go handler in the server node (the peernet section's path)
//	plugin           the same Call, answered by the plugins/echo process
//	                 through the server node's plugin supervisor
//	plugin stream    pluginclient.Client.Call straight to a plugins/echo
//	                 process, no node: the plugin hop on its own
//	go-plugin unary  the anchor: a plain go-plugin gRPC plugin, one unary
//	                 RPC per echo (internal/unaryecho), over the same
//	                 transport (plaintext gRPC on a Unix socket)
//
// and times a plugin's start to its first answered call. Both plugin
// binaries are built with the go command when the section starts.
const (
	echoPluginPkg   = "github.com/peernet/peernet/plugins/echo"
	anchorPluginPkg = "github.com/peernet/peernet/cmd/peernet-bench/internal/unaryechoplugin"

	// Names of the section's systems, as reported.
	inProcessName    = "in-process"
	pluginRoutedName = "plugin"
	pluginStreamName = "plugin stream"
	anchorName       = "go-plugin unary"
)

// pluginReport is what the plugin section measured.
type pluginReport struct {
	Systems []*systemResult `json:"systems"`
	// Start is the start-to-first-call figure of each way of launching.
	Start    []startResult `json:"start_to_first_call,omitempty"`
	Launches int           `json:"launches"`
	// EchoBinary is the plugins/echo binary's size and SHA-256.
	EchoBytes  int64  `json:"echo_binary_bytes"`
	EchoSHA256 string `json:"echo_binary_sha256"`
	// BuildSeconds is how long building both binaries took.
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

// pluginBinaries are the plugin executables the section runs.
type pluginBinaries struct {
	dir       string // temporary; holds both and the sockets' directory
	echo      string
	echoSum   string
	anchor    string
	socketDir string // short and private, for go-plugin's Unix sockets
}

// buildPlugins builds plugins/echo and the anchor into a new temporary
// directory and hashes the echo binary. The caller removes b.dir.
func buildPlugins(o *options) (*pluginBinaries, error) {
	dir, err := os.MkdirTemp("", "pnb")
	if err != nil {
		return nil, err
	}
	b := &pluginBinaries{dir: dir, echo: filepath.Join(dir, "echo"), anchor: filepath.Join(dir, "unaryecho"), socketDir: filepath.Join(dir, "s")}
	src := moduleDir()
	for _, t := range []struct{ out, pkg string }{{b.echo, echoPluginPkg}, {b.anchor, anchorPluginPkg}} {
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
	bins, err := buildPlugins(o)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(bins.dir)
	rep := &pluginReport{Launches: o.launches, EchoSHA256: bins.echoSum, BuildSeconds: time.Since(t0).Seconds()}
	if fi, err := os.Stat(bins.echo); err == nil {
		rep.EchoBytes = fi.Size()
	}

	// The sequential and in-flight cases, with the measuring code of the
	// other sections; the connect case is replaced by the launches below.
	po := *o
	po.sizes = []int{smallPayload}
	po.cases = slices.DeleteFunc(slices.Clone(o.cases), func(c string) bool { return c != "seq" && c != "rps" })
	if len(po.cases) > 0 {
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
			{inProcessName, func(*pluginBinaries) (system, error) { return newPeerNetSystem() }},
			{pluginRoutedName, newPluginRoutedSystem},
			{pluginStreamName, newPluginStreamSystem},
			{anchorName, newAnchorSystem},
		} {
			sys, err := s.sys(bins)
			if err != nil {
				return nil, fmt.Errorf("%s: setting up: %w", s.name, err)
			}
			sys.name = s.name
			systems = append(systems, sys)
		}
		if rep.Systems, err = measureSystems(&po, systems); err != nil {
			return nil, err
		}
	}
	if o.does("connect") {
		if rep.Start, err = measureStarts(o, bins); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// newPluginRoutedSystem starts two nodes; the server runs plugins/echo
// under a supervisor, which exposes the plugin's echo handle (no
// concurrency cap, as the in-process handler).
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
		childCPU: func() time.Duration {
			var d time.Duration
			for _, st := range sup.Status() {
				d += processCPU(st.Pid)
			}
			return d
		},
	}, nil
}

// launchEcho starts plugins/echo through pluginclient, as the supervisor
// does. sum may be empty to skip the checksum.
func launchEcho(ctx context.Context, b *pluginBinaries, sum string) (*pluginclient.Client, error) {
	return pluginclient.Launch(ctx, pluginclient.LaunchConfig{
		Name:   "echo",
		Path:   b.echo,
		SHA256: sum,
	})
}

// stopPlugin stops c, giving calls in flight (there are none) a moment.
func stopPlugin(c *pluginclient.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Stop(ctx)
}

type streamClient struct{ c *pluginclient.Client }

func (s streamClient) echo(ctx context.Context, p []byte) ([]byte, error) {
	return s.c.Call(ctx, &pluginsdk.Request{Handle: echoHandle, Kind: pluginsdk.KindCall, Args: p})
}

// newPluginStreamSystem launches plugins/echo and calls it directly.
func newPluginStreamSystem(b *pluginBinaries) (system, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := launchEcho(ctx, b, b.echoSum)
	if err != nil {
		return system{}, err
	}
	return system{
		client:   streamClient{c},
		close:    func() { stopPlugin(c) },
		childCPU: func() time.Duration { return processCPU(c.Pid()) },
	}, nil
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
// plugin: gRPC only, plaintext, Unix sockets in the same directory, no
// inherited environment, the process killed if this one dies (on Linux).
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
	if err := os.MkdirAll(b.socketDir, 0o700); err != nil {
		return system{}, err
	}
	a, err := startAnchor(b)
	if err != nil {
		return system{}, err
	}
	return system{
		client:   a,
		close:    a.gp.Kill,
		childCPU: func() time.Duration { return processCPU(a.pid()) },
	}, nil
}

// Ways of launching timed by measureStarts.
const (
	startPeerNet     = "PeerNet plugin (pluginclient.Launch, checksum on)"
	startNoChecksum  = "PeerNet plugin, checksum off"
	startAnchorPlain = "go-plugin unary (NewClient, Dispense)"
)

// measureStarts launches each kind of plugin o.launches times, interleaved,
// and times each from the start of the launch to the first answered 64-byte
// echo. Stopping the plugin is not timed.
func measureStarts(o *options, b *pluginBinaries) ([]startResult, error) {
	ctx := context.Background()
	p := payload(smallPayload)
	kinds := []struct {
		name  string
		start func() (time.Duration, func(), error)
	}{
		{startPeerNet, func() (time.Duration, func(), error) { return startEchoFirstCall(ctx, b, b.echoSum, p) }},
		{startNoChecksum, func() (time.Duration, func(), error) { return startEchoFirstCall(ctx, b, "", p) }},
		{startAnchorPlain, func() (time.Duration, func(), error) {
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
	}
	if err := os.MkdirAll(b.socketDir, 0o700); err != nil {
		return nil, err
	}
	times := make([][]time.Duration, len(kinds))
	for i := range o.launches {
		for k, kind := range kinds {
			o.progress("plugin: start to first call, %s (%d of %d)", kind.name, i+1, o.launches)
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

// startEchoFirstCall launches plugins/echo and makes one call; it returns
// the time both took and a func that stops the plugin.
func startEchoFirstCall(ctx context.Context, b *pluginBinaries, sum string, p []byte) (time.Duration, func(), error) {
	t0 := time.Now()
	c, err := launchEcho(ctx, b, sum)
	if err != nil {
		return 0, nil, err
	}
	r, err := streamClient{c}.echo(ctx, p)
	d := time.Since(t0)
	if err == nil {
		err = checkEcho(r, p)
	}
	return d, func() { stopPlugin(c) }, err
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// userHZ is the unit of the CPU times in /proc/PID/stat (USER_HZ), 100 on
// every Linux architecture Go supports.
const userHZ = 100

// processCPU is the user and system CPU time process pid has used, all its
// threads included, from /proc (10 ms resolution); 0 if it cannot be read.
func processCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count fields after its closing one. utime and stime are fields 14
	// and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * time.Second / userHZ
}
