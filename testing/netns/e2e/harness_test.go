package e2e

import (
	"go.uber.org/goleak"

	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/peernet/peernet/control"
	"github.com/peernet/peernet/testing/netns"
	"github.com/peernet/peernet/testing/poll"
)

// Timing of every node in these tests: short, so that liveness and redial
// bounds are measurable in a test of reasonable length.
const (
	pingInterval = 300 * time.Millisecond
	reconnectMin = 100 * time.Millisecond
	reconnectMax = time.Second
	listenPort   = 4040
)

// buildDir holds the binaries built by tools; TestMain removes it.
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if buildDir != "" {
			os.RemoveAll(buildDir)
		}
		os.Exit(code)
	}))
}

// binaries are the programs the tests run.
type binaries struct {
	host       string // peernet-host
	echo       string // the echo plugin
	echoSHA256 string
}

// tools builds peernet-host and the echo plugin, once per test binary. It
// skips the test, without building, when namespaces are unavailable.
func tools(t testing.TB) binaries {
	t.Helper()
	if err := netns.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "peernet-e2e-"); buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+"/",
			"github.com/peernet/peernet/cmd/peernet-host", "github.com/peernet/peernet/plugins/echo")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	b := binaries{host: filepath.Join(buildDir, "peernet-host"), echo: filepath.Join(buildDir, "echo")}
	raw, err := os.ReadFile(b.echo)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	b.echoSHA256 = hex.EncodeToString(sum[:])
	return b
}

// node is one peernet-host process in a namespace, with its configuration
// file and data dir in a directory of the test's.
type node struct {
	t       testing.TB
	bin     binaries
	name    string
	host    *netns.Host
	dir     string
	cfgPath string
	id      string // PeerID
	listen  netip.AddrPort
	peers   []*node // declared as trusted, without addresses
	echo    bool    // run and expose the echo plugin
	noMDNS  bool    // run without mDNS discovery

	proc *process // the running process; nil before start
	runs int
}

// process is one run of peernet-host.
type process struct {
	cmd     *exec.Cmd
	log     *logSink
	started time.Time
	done    chan struct{} // closed when the process has exited
	err     error         // Wait's result, set before done closes
}

// newNode creates node name in h: its directory, a configuration file with
// no peers, and its identity (through `peernet-host id`).
func newNode(t testing.TB, bin binaries, name string, h *netns.Host) *node {
	t.Helper()
	n := &node{
		t: t, bin: bin, name: name, host: h,
		dir:    filepath.Join(t.TempDir(), name),
		listen: netip.AddrPortFrom(h.Addr, listenPort),
	}
	n.cfgPath = filepath.Join(n.dir, name+".hcl")
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	n.writeConfig()
	out, _ := n.cli(t, "id", "-json")
	var v struct{ ID string }
	if err := json.Unmarshal([]byte(out.stdout), &v); err != nil || out.code != 0 || v.ID == "" {
		t.Fatalf("peernet-host id for %s: exit %d, %q %q", name, out.code, out.stdout, out.stderr)
	}
	n.id = v.ID
	t.Cleanup(func() { n.stop(t) })
	return n
}

var configTemplate = template.Must(template.New("hcl").Parse(`node {
  name           = "{{.Name}}"
  data_dir       = "{{.DataDir}}"
  listen         = "{{.Listen}}"
  log_level      = "debug"
  log_format     = "json"
  ping_interval  = "{{.Ping}}"
  reconnect_min  = "{{.ReconnectMin}}"
  reconnect_max  = "{{.ReconnectMax}}"
  shutdown_grace = "0s"
}
{{range .Peers}}
peer "{{.Label}}" {
  id = "{{.ID}}"
}
{{end}}
{{- if .Echo}}
plugin "echo" {
  command = "{{.EchoPath}}"
  sha256  = "{{.EchoSHA256}}"
  handle "echo" {}
}
{{end}}
discovery {
  mdns       = {{not .NoMDNS}}
  interfaces = ["{{.Iface}}"]
}
`))

// writeConfig (re)writes the node's configuration file from its fields.
func (n *node) writeConfig() {
	n.t.Helper()
	type peer struct{ Label, ID string }
	data := struct {
		Name, DataDir, Listen, Iface     string
		Ping, ReconnectMin, ReconnectMax time.Duration
		Peers                            []peer
		Echo, NoMDNS                     bool
		EchoPath, EchoSHA256             string
	}{
		Name: n.name, DataDir: filepath.Join(n.dir, "data"), Listen: n.listen.String(), Iface: netns.Iface,
		Ping: pingInterval, ReconnectMin: reconnectMin, ReconnectMax: reconnectMax,
		Echo: n.echo, NoMDNS: n.noMDNS, EchoPath: n.bin.echo, EchoSHA256: n.bin.echoSHA256,
	}
	for _, p := range n.peers {
		data.Peers = append(data.Peers, peer{p.name, p.id})
	}
	var b bytes.Buffer
	if err := configTemplate.Execute(&b, data); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(n.cfgPath, b.Bytes(), 0o600); err != nil {
		n.t.Fatal(err)
	}
}

// start runs `peernet-host run` in the node's namespace, its log going to
// a file in the node's directory and into a logSink.
func (n *node) start() {
	n.t.Helper()
	if n.proc != nil {
		n.t.Fatalf("%s is already running", n.name)
	}
	n.writeConfig()
	n.runs++
	logPath := filepath.Join(n.dir, fmt.Sprintf("run-%d.log", n.runs))
	f, err := os.Create(logPath)
	if err != nil {
		n.t.Fatal(err)
	}
	p := &process{log: newLogSink(f), done: make(chan struct{})}
	p.cmd = n.host.Command(context.Background(), n.bin.host, "run", "-config", n.cfgPath)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		f.Close()
		n.t.Fatalf("starting %s: %v", n.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	n.proc = p
}

// stop sends SIGTERM and waits for the process to exit, killing it after
// 10 s. It fails t if the process did not exit cleanly or exited before it
// was asked to. Stopping a stopped node does nothing.
func (n *node) stop(t testing.TB) {
	t.Helper()
	p := n.proc
	if p == nil {
		return
	}
	n.proc = nil
	defer func() {
		if t.Failed() {
			t.Logf("%s (%s) log, last lines:\n%s", n.name, n.id, p.log.tail(80))
		}
	}()
	select {
	case <-p.done:
		t.Errorf("%s exited on its own: %v; log %s:\n%s", n.name, p.err, n.dir, p.log.tail(30))
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not stop within 10s of SIGTERM; killed", n.name)
	}
	if p.err != nil {
		t.Errorf("%s: %v; log tail:\n%s", n.name, p.err, p.log.tail(30))
	}
}

// alive fails the test if the node's process has exited.
func (n *node) alive() {
	n.t.Helper()
	select {
	case <-n.proc.done:
		n.t.Fatalf("%s exited: %v; log tail:\n%s", n.name, n.proc.err, n.proc.log.tail(30))
	default:
	}
}

// waitServing waits until the node's echo plugin serves: the node accepts
// peers before its plugins are up, and calls in between find no handle.
func (n *node) waitServing(t testing.TB) {
	t.Helper()
	poll.Until(t, n.name+"'s echo plugin serves", 10*time.Second, func() bool {
		return len(n.proc.log.find(message("plugin generation serving", "plugin", "echo"))) > 0
	})
}

// cliResult is what one run of the command-line client did.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cli runs `peernet-host CMD -config FILE ARGS...` from the test process:
// the client reaches the node through the control socket, a Unix socket in
// the data dir, which needs no namespace. It returns the result and how
// long the command took.
func (n *node) cli(t testing.TB, cmd string, args ...string) (cliResult, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, n.bin.host, append([]string{cmd, "-config", n.cfgPath}, args...)...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	start := time.Now()
	err := c.Run()
	took := time.Since(start)
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.code = ee.ExitCode()
	default:
		t.Fatalf("peernet-host %s for %s: %v; stderr %q", cmd, n.name, err, res.stderr)
	}
	return res, took
}

// peerList returns the node's trusted peers as `peernet-host peers -json`
// reports them, or nil if the node does not answer yet.
func (n *node) peerList(t testing.TB) []control.Peer {
	t.Helper()
	out, _ := n.cli(t, "peers", "-json")
	if out.code != 0 {
		return nil
	}
	var ps []control.Peer
	if err := json.Unmarshal([]byte(out.stdout), &ps); err != nil {
		t.Fatalf("peers -json of %s: %v: %q", n.name, err, out.stdout)
	}
	return ps
}

// peer returns what the node reports about other, and whether other is on
// its trust list.
func (n *node) peer(t testing.TB, other *node) (control.Peer, bool) {
	t.Helper()
	for _, p := range n.peerList(t) {
		if p.ID == other.id {
			return p, true
		}
	}
	return control.Peer{}, false
}

// connected reports whether the node says it is connected to other.
func (n *node) connected(t testing.TB, other *node) bool {
	t.Helper()
	p, ok := n.peer(t, other)
	return ok && p.Connected
}

// logEntry is one line of a node's JSON log (go-hclog's JSON format).
type logEntry struct {
	Time    time.Time
	Level   string
	Message string
	Module  string
	Fields  map[string]any
}

// str returns field key as a string, or "" if absent.
func (e logEntry) str(key string) string {
	s, _ := e.Fields[key].(string)
	return s
}

// logSink receives a process's output: it copies every byte to a file and
// keeps every line that parses as a JSON log entry. Safe for concurrent
// use.
type logSink struct {
	mu      sync.Mutex
	file    io.Writer
	partial []byte
	entries []logEntry
	lines   []string
}

func newLogSink(file io.Writer) *logSink { return &logSink{file: file} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.file.Write(p)
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		line := string(s.partial[:i])
		s.partial = s.partial[i+1:]
		s.lines = append(s.lines, line)
		var fields map[string]any
		if json.Unmarshal([]byte(line), &fields) != nil {
			continue
		}
		e := logEntry{Fields: fields}
		e.Level, _ = fields["@level"].(string)
		e.Message, _ = fields["@message"].(string)
		e.Module, _ = fields["@module"].(string)
		if ts, ok := fields["@timestamp"].(string); ok {
			e.Time, _ = time.Parse(time.RFC3339Nano, ts)
		}
		s.entries = append(s.entries, e)
	}
	return len(p), nil
}

// find returns the entries for which match holds, oldest first.
func (s *logSink) find(match func(logEntry) bool) []logEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []logEntry
	for _, e := range s.entries {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// tail returns the last n lines of output.
func (s *logSink) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines[max(0, len(s.lines)-n):], "\n")
}

// since returns entries logged at or after t for which match holds.
func (s *logSink) since(t time.Time, match func(logEntry) bool) []logEntry {
	return s.find(func(e logEntry) bool { return !e.Time.Before(t) && match(e) })
}

// message matches entries with message msg whose field key is val.
func message(msg, key, val string) func(logEntry) bool {
	return func(e logEntry) bool { return e.Message == msg && e.str(key) == val }
}
