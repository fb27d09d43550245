package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/peernet/peernet/control"
	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/host/plugin"
	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/trust"
)

// The many-plugin part starts a real peernet-host whose configuration has
// o.manyPlugins plugin blocks, all of the one plugins/echo binary (each
// started with "-prefix eNNN." so that their handles differ), and a peer
// block trusting a probe node in this process. From the exec of
// peernet-host it times:
//
//   - the control socket's first answer, and every plugin reported running
//     by it (polled every 5 ms);
//   - the probe's handshake with the node, the node's first answer to a
//     call of the first plugin's echo (whatever its status: a node that
//     holds requests while its plugins start answers "unavailable"), and
//     the first call a plugin answered, and how many plugins ran then;
//
// and measures the machine's used memory (MemTotal − MemAvailable) before
// the start, once every plugin runs and once the daemon has stopped again,
// beside the resident and proportional sets (VmRSS, Pss) of the daemon and
// its plugins.

// manyResult is what the many-plugin part measured. Times are from the
// exec of peernet-host, in milliseconds; 0 means it never happened.
type manyResult struct {
	Plugins       int     `json:"plugins"`
	Running       int     `json:"running"` // plugins running at the end
	ControlMs     float64 `json:"control_socket_ms"`
	ConnectedMs   float64 `json:"peer_connected_ms"`
	FirstAnswerMs float64 `json:"first_answer_ms"`
	FirstAnswer   string  `json:"first_answer"` // "ok" or the error it answered
	FirstServedMs float64 `json:"first_served_ms"`
	// RunningAtServed is how many plugins the control socket reported
	// running right after the first call a plugin answered: fewer than
	// Plugins means the node served peers before its plugins all started.
	RunningAtServed int     `json:"running_at_first_served"`
	AllRunningMs    float64 `json:"all_running_ms"`
	// UsedBefore, UsedAfter and UsedStopped are MemTotal − MemAvailable,
	// bytes: the median of samples before the start, once every plugin
	// ran, and once the daemon stopped again.
	UsedBefore  int64 `json:"used_before_bytes"`
	UsedAfter   int64 `json:"used_after_bytes"`
	UsedStopped int64 `json:"used_stopped_bytes"`
	// RSS and PSS add up the daemon's and its plugins' VmRSS and Pss
	// (shared pages split among the processes sharing them), bytes.
	RSS       int64 `json:"rss_bytes"`
	PSS       int64 `json:"pss_bytes"`
	DaemonRSS int64 `json:"daemon_rss_bytes"`
	// CPUms is the CPU time the daemon and its plugins had used once all
	// ran (their live threads'): what starting them cost, whatever the
	// order; over the machine's cores, a bound on how fast they can start.
	CPUms       float64 `json:"cpu_ms"`
	DaemonCPUms float64 `json:"daemon_cpu_ms"` // the daemon's part of CPUms
}

// UsedDelta is what the daemon and its plugins added to the machine's used
// memory: the smaller of its growth from before the start and its fall
// once the daemon stopped. Other work on the machine moves the figure both
// ways; taking the smaller keeps a burst elsewhere during one of the two
// spans out of it.
func (m *manyResult) UsedDelta() int64 {
	return min(m.UsedAfter-m.UsedBefore, m.UsedAfter-m.UsedStopped)
}

// manyLimit bounds the whole start: far beyond any plugin count's.
const manyLimit = 2 * time.Minute

// measureMany runs the many-plugin part with b.host and b.echo.
func measureMany(o *options, b *pluginBinaries) (*manyResult, error) {
	n := o.manyPlugins
	root := filepath.Join(b.dir, "m")
	dataDir := filepath.Join(root, "node")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	nodeID, err := createIdentity(dataDir)
	if err != nil {
		return nil, err
	}
	probe, err := host.Start(host.Config{Name: "bench-probe", DataDir: filepath.Join(root, "probe")})
	if err != nil {
		return nil, err
	}
	defer probe.Close()
	if err := probe.Trust(nodeID, "many"); err != nil {
		return nil, err
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(root, "node.hcl")
	if err := os.WriteFile(cfgPath, manyConfig(n, dataDir, addr, probe.Identity(), b), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(root, "node.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()

	res := &manyResult{Plugins: n}
	o.progress("plugin: %d plugins under one peernet-host: used memory before", n)
	res.UsedBefore = usedMemory(5)

	ctx, cancel := context.WithTimeout(context.Background(), manyLimit)
	defer cancel()
	cmd := exec.Command(b.host, "run", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	setPdeathsig(cmd)
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	defer stop()
	since := func() float64 { return millis(time.Since(t0)) }

	sock := control.SocketPath(dataDir)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		probeNode(ctx, probe, nodeID, addr, "e000."+echoHandle, since, res)
		if res.FirstServedMs > 0 {
			res.RunningAtServed = countRunning(pluginStatuses(ctx, sock))
		}
	}()

	o.progress("plugin: %d plugins under one peernet-host: waiting for all to run", n)
	var statuses []control.PluginStatus
	for res.AllRunningMs == 0 {
		select {
		case <-exited:
			cancel()
			wg.Wait()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("peernet-host exited (%v) before every plugin ran:\n%s", waitErr, tail(log, 2000))
		case <-ctx.Done():
			wg.Wait()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%d of %d plugins running after %v:\n%s", res.Running, n, manyLimit, tail(log, 2000))
		case <-time.After(5 * time.Millisecond):
		}
		if statuses = pluginStatuses(ctx, sock); statuses == nil {
			continue
		}
		if res.ControlMs == 0 {
			res.ControlMs = since()
		}
		if res.Running = countRunning(statuses); res.Running == n {
			res.AllRunningMs = since()
		}
	}
	wg.Wait()

	o.progress("plugin: %d plugins under one peernet-host: used memory after", n)
	res.UsedAfter = usedMemory(5)
	pids := []int{cmd.Process.Pid}
	for _, st := range statuses {
		pids = append(pids, st.Pid)
	}
	res.DaemonRSS = processRSS(cmd.Process.Pid)
	var cpu time.Duration
	for _, pid := range pids {
		cpu += processRuntime(pid)
	}
	res.CPUms, res.DaemonCPUms = millis(cpu), millis(processRuntime(cmd.Process.Pid))
	for _, pid := range pids {
		res.RSS += processRSS(pid)
		res.PSS += procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
	}
	o.progress("plugin: %d plugins under one peernet-host: used memory once stopped", n)
	stop()
	res.UsedStopped = usedMemory(5)
	return res, nil
}

// probeNode connects probe to the node at addr and calls handle until a
// plugin answers it, recording when the handshake completed, when the node
// first answered, and when a plugin did. It gives up when ctx ends.
func probeNode(ctx context.Context, probe *host.Node, node trust.PeerID, addr, handle string, since func() float64, res *manyResult) {
	p := payload(smallPayload)
	for ctx.Err() == nil {
		if res.ConnectedMs == 0 {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			err := probe.Connect(cctx, node, addr)
			cancel()
			if err != nil {
				time.Sleep(2 * time.Millisecond) // the node is not listening yet
				continue
			}
			res.ConnectedMs = since()
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := probe.Call(cctx, node, handle, p)
		cancel()
		if st := rpc.StatusOf(err); st < rpc.StatusNotConnected && res.FirstAnswerMs == 0 {
			res.FirstAnswerMs, res.FirstAnswer = since(), "ok"
			if err != nil {
				res.FirstAnswer = err.Error()
			}
		}
		if err == nil && checkEcho(r, p) == nil {
			res.FirstServedMs = since()
			return
		}
		if rpc.StatusOf(err) == rpc.StatusNotConnected {
			res.ConnectedMs = 0 // dropped: connect again
		}
		time.Sleep(10 * time.Millisecond) // a probe, not a load on the starting node
	}
}

// pluginStatuses asks the control socket at sock for the plugins' status;
// nil while it does not answer.
func pluginStatuses(ctx context.Context, sock string) []control.PluginStatus {
	c, err := control.NewClient(sock)
	if err != nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := c.Plugins(cctx)
	if err != nil || st == nil {
		return nil
	}
	return st
}

func countRunning(statuses []control.PluginStatus) int {
	n := 0
	for _, st := range statuses {
		if st.State == string(plugin.StateRunning) {
			n++
		}
	}
	return n
}

// manyConfig is a peernet-host configuration with n plugin blocks of b.echo,
// plugin i exposing "eNNN.echo", and a peer block trusting the probe.
func manyConfig(n int, dataDir, addr string, probe trust.PeerID, b *pluginBinaries) []byte {
	var c bytes.Buffer
	fmt.Fprintf(&c, "node {\n  name = \"bench-many\"\n  data_dir = %q\n  listen = %q\n  log_level = \"warn\"\n}\n\n", dataDir, addr)
	fmt.Fprintf(&c, "peer \"probe\" {\n  id = %q\n}\n", probe.String())
	for i := range n {
		name := fmt.Sprintf("e%03d", i)
		fmt.Fprintf(&c, "\nplugin %q {\n  command = %q\n  args = [\"-prefix\", \"%s.\"]\n  sha256 = %q\n  handle \"%s.%s\" {}\n}\n",
			name, b.echo, name, b.echoSum, name, echoHandle)
	}
	return c.Bytes()
}

// createIdentity creates the node's identity in dataDir, as peernet-host
// init does, so that the probe can trust it before the node starts.
func createIdentity(dataDir string) (trust.PeerID, error) {
	lock, err := trust.LockDir(dataDir)
	if err != nil {
		return trust.PeerID{}, err
	}
	defer lock.Close()
	id, _, err := trust.LoadOrCreateIdentity(dataDir)
	if err != nil {
		return trust.PeerID{}, err
	}
	return id.PeerID(), nil
}

// freeLoopbackAddr returns a loopback address with a port that was free a
// moment ago.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// usedMemory is the machine's used memory, MemTotal − MemAvailable from
// /proc/meminfo, in bytes: the median of samples taken 100 ms apart.
func usedMemory(samples int) int64 {
	var used []int64
	for i := range samples {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		b, err := os.ReadFile("/proc/meminfo")
		if err != nil {
			return 0
		}
		used = append(used, kBField(b, "MemTotal:")-kBField(b, "MemAvailable:"))
	}
	slices.Sort(used)
	return used[len(used)/2]
}

// tail is the last n bytes of b, as text.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
