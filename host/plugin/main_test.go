package plugin_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/host/plugin"
	"github.com/peernet/peernet/pluginsdk/plugintest"
	"github.com/peernet/peernet/testing/peernettest"
	"github.com/peernet/peernet/trust"
)

// The plugins the tests run.
const (
	echoPkg = "github.com/peernet/peernet/plugins/echo"
	kvPkg   = "github.com/peernet/peernet/plugins/kv"
	testPkg = "github.com/peernet/peernet/host/plugin/internal/testplugin"
)

// childEnv makes the test binary act as a host process (see runChild): its
// value is a JSON childSpec.
const childEnv = "PEERNET_PLUGIN_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if versionDir != "" {
			os.RemoveAll(versionDir)
		}
		os.Exit(code)
	}))
}

// binary is a built plugin and its SHA-256.
type binary struct{ path, sha string }

// build builds the plugin main package pkg once per test binary.
func build(t testing.TB, pkg string) binary {
	t.Helper()
	path, sha := plugintest.Build(t, pkg)
	return binary{path, sha}
}

var (
	versionMu     sync.Mutex
	versionDir    string                // removed when the test binary ends
	versionBuilds = map[string]binary{} // version -> testplugin built with it
)

// testpluginVersion builds the test plugin reporting version v, once per
// test binary: two versions are two binaries with different checksums.
func testpluginVersion(t testing.TB, v string) binary {
	t.Helper()
	versionMu.Lock()
	defer versionMu.Unlock()
	if b, ok := versionBuilds[v]; ok {
		return b
	}
	if versionDir == "" {
		dir, err := os.MkdirTemp("", "pnsup")
		if err != nil {
			t.Fatal(err)
		}
		versionDir = dir
	}
	path := filepath.Join(versionDir, "testplugin-"+v)
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+v, "-o", path, testPkg).CombinedOutput()
	if err != nil {
		t.Fatalf("building %s version %s: %v\n%s", testPkg, v, err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	b := binary{path, hex.EncodeToString(sum[:])}
	versionBuilds[v] = b
	return b
}

// fastRestart restarts within tens of milliseconds, so tests do not wait
// out the production backoff.
var fastRestart = plugin.RestartPolicy{MaxCrashes: 3, Window: time.Minute, BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond}

// config is a plugin configuration running b and exposing handles to every
// trusted peer.
func config(name string, b binary, handles ...string) plugin.Config {
	c := plugin.Config{
		Name:        name,
		Path:        b.path,
		SHA256:      b.sha,
		GracePeriod: 2 * time.Second,
		Restart:     fastRestart,
	}
	for _, h := range handles {
		c.Handles = append(c.Handles, plugin.Handle{Name: h})
	}
	return c
}

// supervisor returns a supervisor for n, closed at cleanup (before n).
func supervisor(t testing.TB, n *host.Node) *plugin.Supervisor {
	t.Helper()
	s, err := plugin.NewSupervisor(plugin.SupervisorConfig{
		Node:   n,
		Logger: plugintest.TestLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustApply(t testing.TB, s *plugin.Supervisor, cfgs ...plugin.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), peernettest.Timeout)
	defer cancel()
	if err := s.Apply(ctx, cfgs); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func apply(s *plugin.Supervisor, cfgs ...plugin.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), peernettest.Timeout)
	defer cancel()
	return s.Apply(ctx, cfgs)
}

// status returns the named plugin's status; ok is false when the
// supervisor does not list it.
func status(s *plugin.Supervisor, name string) (st plugin.Status, ok bool) {
	for _, st := range s.Status() {
		if st.Name == name {
			return st, true
		}
	}
	return plugin.Status{}, false
}

// waitStatus polls until the named plugin's status satisfies cond and
// returns it.
func waitStatus(t testing.TB, s *plugin.Supervisor, name, what string, cond func(plugin.Status) bool) plugin.Status {
	t.Helper()
	var st plugin.Status
	peernettest.Eventually(t, name+" "+what, func() bool {
		var ok bool
		st, ok = status(s, name)
		return ok && cond(st)
	})
	return st
}

func running(st plugin.Status) bool { return st.State == plugin.StateRunning && st.Pid != 0 }

// call calls handle on to from from, with the package's timeout.
func call(from, to *host.Node, handle, args string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), peernettest.Timeout)
	defer cancel()
	res, err := from.Call(ctx, to.Identity(), handle, []byte(args))
	return string(res), err
}

func mustCall(t testing.TB, from, to *host.Node, handle, args string) string {
	t.Helper()
	res, err := call(from, to, handle, args)
	if err != nil {
		t.Fatalf("%s calling %s %q: %v", from.Name(), handle, args, err)
	}
	return res
}

// processGone reports whether pid has exited: no such process, or a zombie
// no one has reaped yet (the container's init may not reap orphans).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...; comm may contain spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// reaped reports whether pid no longer exists, not even as a zombie: what
// the supervisor must ensure for the processes it started.
func reaped(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// waitReaped polls until pid no longer exists and returns how long that
// took.
func waitReaped(t testing.TB, pid int, what string) time.Duration {
	t.Helper()
	start := time.Now()
	peernettest.Eventually(t, fmt.Sprintf("%s (pid %d) is reaped", what, pid), func() bool { return reaped(pid) })
	return time.Since(start)
}

// waitGone polls until pid has exited and returns how long that took.
func waitGone(t testing.TB, pid int, what string) time.Duration {
	t.Helper()
	start := time.Now()
	peernettest.Eventually(t, fmt.Sprintf("%s (pid %d) is gone", what, pid), func() bool { return processGone(pid) })
	return time.Since(start)
}

// load calls a handle in a loop from other goroutines and counts the
// outcomes.
type load struct {
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu    sync.Mutex
	ok    int
	fails []error
	seen  map[string]int // result -> count
}

// startLoad starts workers goroutines that call handle on to from from in
// a loop until stopped (at the latest at cleanup). check, if set, returns
// an error for a wrong result; each worker passes it its last result too.
func startLoad(t testing.TB, workers int, from, to *host.Node, handle string, args func(i int) string, check func(res, prev string, i int) error) *load {
	t.Helper()
	l := &load{stop: make(chan struct{}), seen: map[string]int{}}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			prev := ""
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				a := args(w*1_000_000 + i)
				res, err := call(from, to, handle, a)
				if err == nil && check != nil {
					err = check(res, prev, w*1_000_000+i)
				}
				l.mu.Lock()
				if err != nil {
					l.fails = append(l.fails, err)
				} else {
					l.ok++
					l.seen[res]++
				}
				l.mu.Unlock()
				prev = res
			}
		}()
	}
	t.Cleanup(l.end)
	return l
}

// end stops the workers and waits for them.
func (l *load) end() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

func (l *load) counts() (ok int, fails []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, append([]error(nil), l.fails...)
}

// waitCalls polls until the load has made n more successful calls than
// from.
func (l *load) waitCalls(t testing.TB, from, n int) int {
	t.Helper()
	var ok int
	peernettest.Eventually(t, fmt.Sprintf("%d more successful calls", n), func() bool {
		ok, _ = l.counts()
		return ok >= from+n
	})
	return ok
}

// noDowns records the peer-down events of nodes from now on.
type noDowns struct {
	mu    sync.Mutex
	downs []string
}

func watchDowns(t testing.TB, nodes ...*host.Node) *noDowns {
	d := &noDowns{}
	for _, n := range nodes {
		cancel := n.Subscribe(func(e host.PeerEvent) {
			if !e.Up {
				d.mu.Lock()
				d.downs = append(d.downs, n.Name()+": "+e.String())
				d.mu.Unlock()
			}
		})
		t.Cleanup(cancel)
	}
	return d
}

func (d *noDowns) check(t testing.TB) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.downs) > 0 {
		t.Errorf("peer connections dropped: %v", d.downs)
	}
}

// childSpec tells a child host process what to run.
type childSpec struct {
	DataDir string
	Trust   string // PeerID of the test's node
	Plugins []plugin.Config
}

// runChild is the child host process: a node that trusts the test's node,
// serves "status" (the supervisor's Status as JSON) and runs the plugins. It
// prints "ready <peer id> <port>" once they serve, then runs until its
// standard input closes or it is killed.
func runChild(specJSON string) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	peer, err := trust.ParsePeerID(spec.Trust)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	n, err := host.Start(host.Config{Name: "child", DataDir: spec.DataDir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer n.Close()
	if err := n.Trust(peer, "test"); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	sup, err := plugin.NewSupervisor(plugin.SupervisorConfig{Node: n})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer sup.Close()
	err = n.Expose("status", host.HandlerFunc(func(context.Context, *host.Request) ([]byte, error) {
		return json.Marshal(sup.Status())
	}), host.ExposeOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), peernettest.Timeout)
	defer cancel()
	if err := sup.Apply(ctx, spec.Plugins); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	fmt.Printf("ready %s %d\n", n.Identity(), n.Port())
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// child is a host process started by startChild.
type child struct {
	cmd  *exec.Cmd
	id   trust.PeerID
	addr string
}

// startChild runs a child host process for spec, makes from trust it and
// connects them. The child is killed at cleanup.
func startChild(t testing.TB, from *host.Node, spec childSpec) *child {
	t.Helper()
	spec.Trust = from.Identity().String()
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe() // held open: the child runs until it closes
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd}
	t.Cleanup(func() {
		cmd.Process.Kill()
		stdin.Close()
		cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(2 * peernettest.Timeout):
		cmd.Process.Kill()
		<-lines
		t.Fatalf("child host did not start in time; stderr:\n%s", stderr.String())
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child host said %q; stderr:\n%s", line, stderr.String())
	}
	if c.id, err = trust.ParsePeerID(f[1]); err != nil {
		t.Fatal(err)
	}
	c.addr = "127.0.0.1:" + f[2]
	if err := from.Trust(c.id, "child"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), peernettest.Timeout)
	defer cancel()
	if err := from.Connect(ctx, c.id, c.addr); err != nil {
		t.Fatalf("connecting to the child host: %v", err)
	}
	return c
}

// callChild calls handle on the child from from.
func (c *child) call(from *host.Node, handle, args string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), peernettest.Timeout)
	defer cancel()
	res, err := from.Call(ctx, c.id, handle, []byte(args))
	return string(res), err
}

// status returns the child's status of the named plugin.
func (c *child) status(t testing.TB, from *host.Node, name string) plugin.Status {
	t.Helper()
	res, err := c.call(from, "status", "")
	if err != nil {
		t.Fatalf("child status: %v", err)
	}
	var sts []plugin.Status
	if err := json.Unmarshal([]byte(res), &sts); err != nil {
		t.Fatalf("child status: %v", err)
	}
	for _, st := range sts {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("child runs no plugin %q: %s", name, res)
	return plugin.Status{}
}

// waitChildStatus polls the child until the named plugin's status
// satisfies cond.
func (c *child) waitStatus(t testing.TB, from *host.Node, name, what string, cond func(plugin.Status) bool) plugin.Status {
	t.Helper()
	var st plugin.Status
	peernettest.Eventually(t, name+" "+what, func() bool {
		st = c.status(t, from, name)
		return cond(st)
	})
	return st
}

// kill kills the child host with SIGKILL and reaps it.
func (c *child) kill(t testing.TB) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
}
