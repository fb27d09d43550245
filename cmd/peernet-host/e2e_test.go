//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peernet/peernet/config"
	"github.com/peernet/peernet/control"
	"github.com/peernet/peernet/host/plugin"
	"github.com/peernet/peernet/testing/peernettest"
	"github.com/peernet/peernet/testing/poll"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// The end-to-end test builds the real binaries, runs real daemons in
// temporary directories and drives them only through the peernet-host
// command line, as an operator would.

const (
	cliTimeout  = 30 * time.Second // one peernet-host command
	pollTimeout = 15 * time.Second // a condition polled for
	grace       = 5 * time.Second  // shutdown_grace in the test configurations
)

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and runs daemons")
	}
	bins := buildBinaries(t)
	t.Run("operator", func(t *testing.T) { testOperator(t, bins) })
	t.Run("bad input", func(t *testing.T) { testBadInput(t, bins) })
	t.Run("init", func(t *testing.T) { testInit(t, bins) })
	t.Run("log file", func(t *testing.T) { testLogFile(t, bins) })
}

// testLogFile runs a node with -log-file: the log goes to the file, not to
// standard error, and SIGHUP reopens it after it was moved away, as
// logrotate does. Its plugin's binary does not have the configured
// digest, and the log says one thing about what happens next.
func testLogFile(t *testing.T, bins *binaries) {
	n := newNode(t, bins, t.TempDir(), "logger")
	n.write(t, nodeBlock("logger")+pluginBlock("echo", bins.echo, bins.kvSum, `handle "echo" {}`))
	logPath := filepath.Join(n.dir, "logger.log")
	var stderr peernettest.Buffer
	cmd := exec.Command(bins.host, "run", "-config", n.cfg, "-log-file", logPath)
	cmd.Env, cmd.Stdout, cmd.Stderr = hostEnv(), &stderr, &stderr
	exited, runErr := startProcess(t, cmd)
	logHas := func(path, what string) func() bool {
		return func() bool {
			b, err := os.ReadFile(path)
			return err == nil && strings.Contains(string(b), what)
		}
	}
	poll.Until(t, "the log file to say the node runs", pollTimeout, logHas(logPath, "peernet-host running"))
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "checksum mismatch") ||
		!strings.Contains(string(b), "apply a corrected configuration") || strings.Contains(string(b), "keeps trying") {
		t.Errorf("the log of a plugin whose digest does not match:\n%s\nwant the mismatch and one word on what next: apply a corrected configuration", b)
	}
	if p := n.plugins(t)["echo"]; p.State != string(plugin.StateFailed) || !strings.Contains(p.LastError, "checksum mismatch") {
		t.Errorf("plugins shows echo as %+v; want failed with the checksum mismatch", p)
	}
	if fi, err := os.Stat(logPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the reopened log file to report the reload", pollTimeout, logHas(logPath, "configuration reloaded"))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if err := runErr(); err != nil {
			t.Errorf("run -log-file exited with %v", err)
		}
	case <-time.After(grace + 10*time.Second):
		t.Fatal("run -log-file did not exit after SIGTERM")
	}
	if !logHas(logPath, "peernet-host stopped")() || logHas(rotated, "configuration reloaded")() {
		t.Error("the log went on in the moved file after SIGHUP")
	}
	if stderr.String() != "" {
		t.Errorf("run -log-file wrote to standard error:\n%s", stderr.String())
	}
}

// testInit checks init's starter file and its refusal to give a second
// configuration the identity of a node that already has one.
func testInit(t *testing.T, bins *binaries) {
	dir := t.TempDir()
	doInit := func(args ...string) result {
		t.Helper()
		r, err := runCLI(bins.host, "", append([]string{"init"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	load := func(path string) *config.File {
		t.Helper()
		f, err := config.Load(path)
		if err != nil {
			t.Fatalf("the file init wrote: %v", err)
		}
		return f
	}

	// The default file name says nothing about the node: it is named
	// after its directory, which init creates. The starter accepts this
	// machine only and announces nothing.
	alpha := filepath.Join(dir, "alpha", "peernet.hcl")
	r := doInit("-config", alpha)
	if r.code != exitOK || !strings.Contains(r.stdout, `node "alpha" is pn1`) || !strings.Contains(r.stdout, "listening on 127.0.0.1:4040, mDNS off") {
		t.Fatalf("init -config alpha/peernet.hcl: %v", r)
	}
	if f := load(alpha); f.Node.Name != "alpha" || f.Node.Listen != "127.0.0.1:4040" || f.Discovery.MDNS {
		t.Errorf("init wrote name %q, listen %q, mdns %v; want alpha, 127.0.0.1:4040, false", f.Node.Name, f.Node.Listen, f.Discovery.MDNS)
	}
	alphaID := runOK(t, bins, "id", "-config", alpha)

	// A second configuration next to it would share its data dir, and so
	// be the same node: refused, and nothing is written, unless told.
	beta := filepath.Join(dir, "alpha", "beta.hcl")
	wantCode(t, "init of a second node in the same data dir", doInit("-config", beta), exitFailed,
		"already holds the identity of node "+strings.TrimSpace(alphaID), "-keep-identity")
	if _, err := os.Stat(beta); !os.IsNotExist(err) {
		t.Errorf("the refused init wrote %s: %v", beta, err)
	}
	wantCode(t, "init -force of the same file", doInit("-force", "-config", alpha), exitFailed, "already holds the identity")
	if r := doInit("-keep-identity", "-config", beta); r.code != exitOK || !strings.Contains(r.stdout, `node "beta" is `+strings.TrimSpace(alphaID)) {
		t.Errorf("init -keep-identity: %v; want node beta with alpha's identity", r)
	}

	// -listen and -mdns, given after -config as anywhere else.
	gamma := filepath.Join(dir, "gamma.hcl")
	if r := doInit("-config", gamma, "-listen", ":4041", "-mdns"); r.code != exitOK {
		t.Fatalf("init -listen :4041 -mdns: %v", r)
	}
	if f := load(gamma); f.Node.Name != "gamma" || f.Node.Listen != ":4041" || !f.Discovery.MDNS {
		t.Errorf("init -listen :4041 -mdns wrote name %q, listen %q, mdns %v", f.Node.Name, f.Node.Listen, f.Discovery.MDNS)
	}
	wantCode(t, "init -listen nope", doInit("-config", filepath.Join(dir, "d", "x.hcl"), "-listen", "nope"), exitUsage, "Invalid listen address")
	wantCode(t, "init named after a directory that is no node name", doInit("-config", filepath.Join(dir, "my node", "peernet.hcl")),
		exitUsage, "Invalid node name", "-name")
}

// startProcess starts cmd, which is killed at cleanup if it still runs. It
// returns a channel closed once cmd has exited, and a function that
// returns how it exited, once it has.
func startProcess(t testing.TB, cmd *exec.Cmd) (exited <-chan struct{}, waitErr func() error) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var err error // set before done closes
	go func() {
		err = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	return done, func() error { <-done; return err }
}

// runOK runs peernet-host with args, which must succeed, and returns its
// standard output.
func runOK(t *testing.T, bins *binaries, args ...string) string {
	t.Helper()
	r, err := runCLI(bins.host, "", args...)
	if err != nil || r.code != exitOK {
		t.Fatalf("peernet-host %s: %v %v", strings.Join(args, " "), err, r)
	}
	return r.stdout
}

// binaries are the programs the test runs, built into a temporary
// directory, with the SHA-256 of each plugin.
type binaries struct {
	host                     string
	echo, echo2, kv          string // echo2 is echo stamped as version 2.0.0
	echoSum, echo2Sum, kvSum string
}

func buildBinaries(t *testing.T) *binaries {
	t.Helper()
	dir := t.TempDir()
	b := &binaries{
		host:  filepath.Join(dir, "peernet-host"),
		echo:  filepath.Join(dir, "echo"),
		echo2: filepath.Join(dir, "echo-2.0.0"),
		kv:    filepath.Join(dir, "kv"),
	}
	var hostFlags []string
	if raceEnabled {
		hostFlags = []string{"-race"}
	}
	for _, x := range []struct {
		out, pkg string
		flags    []string
	}{
		{b.host, "github.com/peernet/peernet/cmd/peernet-host", hostFlags},
		{b.echo, "github.com/peernet/peernet/plugins/echo", nil},
		{b.echo2, "github.com/peernet/peernet/plugins/echo", []string{"-ldflags", "-X main.version=2.0.0"}},
		{b.kv, "github.com/peernet/peernet/plugins/kv", nil},
	} {
		args := append(append([]string{"build"}, x.flags...), "-o", x.out, x.pkg)
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	b.echoSum, b.echo2Sum, b.kvSum = fileSum(t, b.echo), fileSum(t, b.echo2), fileSum(t, b.kv)
	return b
}

func fileSum(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// result is how one peernet-host command ended.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// runCLI runs the peernet-host binary with args and stdin. It never fails
// the test, so any goroutine may call it; the error is for a command that
// could not run or did not end within cliTimeout.
func runCLI(bin, stdin string, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = hostEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("peernet-host %s: no exit within %s", strings.Join(args, " "), cliTimeout)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		return r, err
	}
	return r, nil
}

// hostEnv is the environment of the peernet-host processes. A binary
// built with -race sleeps a second at exit by default, waiting for late
// race reports; the test's polls make that wait unnecessary.
func hostEnv() []string {
	env := os.Environ()
	if raceEnabled {
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return env
}

// stateRunning is the state the plugins command shows for a plugin serving
// calls: the supervisor's own name for it.
const stateRunning = string(plugin.StateRunning)

// node is one peernet-host daemon under test, with its directory and
// configuration file.
type node struct {
	name string
	dir  string
	cfg  string // the configuration file, dir/NAME.hcl
	bins *binaries

	cmd  *exec.Cmd
	done chan struct{}       // closed when the running process has exited
	code int                 // its exit code, set before done closes
	log  *peernettest.Buffer // its standard error
}

func newNode(t testing.TB, bins *binaries, root, name string) *node {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &node{name: name, dir: dir, cfg: filepath.Join(dir, name+".hcl"), bins: bins}
}

// write replaces the node's configuration file.
func (n *node) write(t testing.TB, hcl string) {
	t.Helper()
	if err := os.WriteFile(n.cfg, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
}

// socket is the path of the node's control socket.
func (n *node) socket() string { return control.SocketPath(filepath.Join(n.dir, "data")) }

// cli runs "peernet-host COMMAND -config FILE ARGS...".
func (n *node) cli(t testing.TB, args ...string) result {
	t.Helper()
	return n.cliIn(t, "", args...)
}

// cliIn is cli with standard input.
func (n *node) cliIn(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	r, err := runCLI(n.bins.host, stdin, n.args(args)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (n *node) args(args []string) []string {
	return append([]string{args[0], "-config", n.cfg}, args[1:]...)
}

// must runs a command that must succeed and returns its standard output.
func (n *node) must(t testing.TB, args ...string) string {
	t.Helper()
	r := n.cli(t, args...)
	if r.code != exitOK {
		t.Fatalf("%s: peernet-host %s: %v", n.name, strings.Join(args, " "), r)
	}
	return r.stdout
}

// mustJSON runs a command with -json that must succeed and decodes its
// output into v.
func (n *node) mustJSON(t testing.TB, v any, args ...string) {
	t.Helper()
	out := n.must(t, append([]string{args[0], "-json"}, args[1:]...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s: peernet-host %s -json: %v\n%s", n.name, args[0], err, out)
	}
}

func (n *node) status(t testing.TB) control.Status {
	t.Helper()
	var st control.Status
	n.mustJSON(t, &st, "status")
	return st
}

func (n *node) plugins(t testing.TB) map[string]control.PluginStatus {
	t.Helper()
	var ps []control.PluginStatus
	n.mustJSON(t, &ps, "plugins")
	m := map[string]control.PluginStatus{}
	for _, p := range ps {
		m[p.Name] = p
	}
	return m
}

func (n *node) peers(t testing.TB) map[string]control.Peer {
	t.Helper()
	var ps []control.Peer
	n.mustJSON(t, &ps, "trust", "list")
	m := map[string]control.Peer{}
	for _, p := range ps {
		m[p.Label] = p
	}
	return m
}

// start runs "peernet-host run" and waits until the node says it is ready:
// its control socket answers and its plugins have been started. The process is killed at cleanup if it still runs, and
// its log is shown if the test failed.
func (n *node) start(t testing.TB) {
	t.Helper()
	n.log = &peernettest.Buffer{}
	n.cmd = exec.Command(n.bins.host, "run", "-config", n.cfg)
	n.cmd.Env = hostEnv()
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	n.done = done
	cmd, log := n.cmd, n.log
	go func() {
		cmd.Wait()
		n.code = cmd.ProcessState.ExitCode()
		close(done)
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
		if strings.Contains(log.String(), "WARNING: DATA RACE") {
			t.Errorf("%s: the race detector reported a race:\n%s", n.name, log)
		} else if t.Failed() {
			t.Logf("%s's log:\n%s", n.name, log)
		}
	})
	poll.Until(t, n.name+" to be ready", pollTimeout, func() bool {
		select {
		case <-done:
			t.Fatalf("%s exited with %d while starting:\n%s", n.name, n.code, log)
		default:
		}
		r, err := runCLI(n.bins.host, "", n.args([]string{"status", "-json"})...)
		var st control.Status
		return err == nil && r.code == exitOK && json.Unmarshal([]byte(r.stdout), &st) == nil && st.Ready
	})
}

// running reports whether the node's process is still running.
func (n *node) running() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// terminate sends SIGTERM and waits up to within for the process to exit;
// it returns the exit code and how long the exit took.
func (n *node) terminate(t testing.TB, within time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.done:
		return n.code, time.Since(start)
	case <-time.After(within):
		t.Fatalf("%s did not exit within %s of SIGTERM", n.name, within)
		return 0, 0
	}
}

// Configuration builders. Nodes listen on port 0; the test reads the
// address from "status".

func nodeBlock(name string) string {
	return fmt.Sprintf(`node {
  name           = %q
  data_dir       = "./data"
  listen         = "127.0.0.1:0"
  shutdown_grace = %q
}
`, name, grace.String())
}

// pluginBlock is a plugin block; body holds its handle blocks and any
// other attributes.
func pluginBlock(name, command, sum string, body ...string) string {
	return fmt.Sprintf("\nplugin %q {\n  command = %q\n  sha256  = %q\n%s}\n", name, command, sum, indentLines(body))
}

func indentLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// wantCode fails the test unless r ended with code and its standard error
// contains every one of msgs.
func wantCode(t testing.TB, what string, r result, code int, msgs ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("%s: exit %d, want %d\n%v", what, r.code, code, r)
		return
	}
	for _, m := range msgs {
		if !strings.Contains(r.stderr, m) {
			t.Errorf("%s: stderr lacks %q\n%v", what, m, r)
		}
	}
}

// pair starts alpha (with cfgAlpha) and beta (no plugins), makes them trust
// each other through the CLI and connects beta to alpha. It returns the two
// nodes and an unstarted third node, gamma, whose identity exists.
func pair(t *testing.T, bins *binaries, cfgAlpha func(n *node) string) (alpha, beta, gamma *node) {
	t.Helper()
	root := t.TempDir()
	alpha, beta, gamma = newNode(t, bins, root, "alpha"), newNode(t, bins, root, "beta"), newNode(t, bins, root, "gamma")

	// init writes a starter configuration and creates the identity; the
	// test then replaces the file with its own.
	if out := alpha.must(t, "init", "-name", "alpha"); !strings.Contains(out, `node "alpha" is pn1`) {
		t.Errorf("init printed %q", out)
	}
	alpha.write(t, cfgAlpha(alpha))
	beta.write(t, nodeBlock("beta"))
	gamma.write(t, nodeBlock("gamma"))
	for _, n := range []*node{alpha, beta} {
		n.start(t)
	}
	alphaID, betaID := strings.TrimSpace(alpha.must(t, "id")), strings.TrimSpace(beta.must(t, "id"))
	gamma.must(t, "id") // creates gamma's identity; gamma never runs
	if st := alpha.status(t); st.ID != alphaID || st.Name != "alpha" {
		t.Fatalf("alpha's status says %s %s; id said %s", st.Name, st.ID, alphaID)
	}

	if out := alpha.must(t, "trust", "add", betaID, "beta"); !strings.Contains(out, "trusted "+betaID) {
		t.Errorf("trust add printed %q", out)
	}
	beta.must(t, "trust", "add", alphaID, "alpha")
	beta.must(t, "connect", "alpha", alpha.status(t).Listen)
	poll.Until(t, "alpha to see beta connected", pollTimeout, func() bool { return alpha.peers(t)["beta"].Connected })
	// The connection's suite is the dialer's offer, and each side sends
	// up to the other's limit (docs/protocol.md §2, §5).
	if p := alpha.peers(t)["beta"]; p.Suite != wire.DefaultSuite().String() || p.PeerMaxMessageSize != wire.DefaultMaxMessageSize {
		t.Errorf("alpha's peers shows beta with suite %q and max message size %d, want %v and %d",
			p.Suite, p.PeerMaxMessageSize, wire.DefaultSuite(), wire.DefaultMaxMessageSize)
	}
	return alpha, beta, gamma
}

func testOperator(t *testing.T, bins *binaries) {
	var kvDir string
	alphaV1 := func(n *node) string {
		kvDir = filepath.Join(n.dir, "kv")
		return nodeBlock("alpha") + pluginBlock("echo", bins.echo, bins.echoSum,
			`handle "echo" {}`, `handle "whoami" {}`, `handle "sleep" {}`)
	}
	alpha, beta, gamma := pair(t, bins, alphaV1)
	alphaID := alpha.status(t).ID
	betaID := beta.status(t).ID
	strangerID := strings.TrimSpace(gamma.must(t, "id"))

	// Calls, with arguments on the command line and on stdin.
	if out := beta.must(t, "call", "alpha", "echo", "hello"); out != "hello\n" {
		t.Errorf("echo hello printed %q", out)
	}
	if r := beta.cliIn(t, "from stdin", "call", "alpha", "echo", "-"); r.code != exitOK || r.stdout != "from stdin\n" {
		t.Errorf("echo - with stdin: %v", r)
	}
	if out := beta.must(t, "call", "alpha", "whoami"); strings.TrimSpace(out) != betaID {
		t.Errorf("whoami printed %q, want beta's ID %s", out, betaID)
	}
	beta.must(t, "send", "alpha", "echo", "fire and forget")

	// connect never reports a success it did not achieve: another address
	// of a connected peer is refused and changes nothing, a bad one fails
	// before dialling; disconnect drops the peer, still trusted, until the
	// next connect.
	alphaAddr := alpha.status(t).Listen
	wantCode(t, "connect elsewhere while connected", beta.cli(t, "connect", "alpha", "127.0.0.1:1"), exitFailed, "already connected")
	wantCode(t, "connect to a bad address", beta.cli(t, "connect", "alpha", "notanaddress"), exitFailed, "bad address")
	if p := beta.peers(t)["alpha"]; !p.Connected || p.Source != "connect" {
		t.Errorf("alpha after refused connects: %+v; want connected, address from connect", p)
	}
	beta.must(t, "disconnect", "alpha")
	poll.Until(t, "alpha to see beta gone", pollTimeout, func() bool { return !alpha.peers(t)["beta"].Connected })
	if p, ok := beta.peers(t)["alpha"]; !ok || p.Connected {
		t.Errorf("alpha after disconnect: %+v (listed %v); want trusted, not connected", p, ok)
	}
	wantCode(t, "disconnect when not connected", beta.cli(t, "disconnect", "alpha"), exitFailed, "not_connected")
	beta.must(t, "connect", "alpha", alphaAddr)
	if v := alpha.plugins(t)["echo"]; v.Version != "1.0.0" || v.State != stateRunning {
		t.Errorf("echo before reload: %+v", v)
	}
	connBefore := alpha.peers(t)["beta"]

	// Reload: echo swapped to a rebuilt binary, its whoami handle revoked
	// and its echo handle closed to beta; the kv plugin added.
	alphaV2 := nodeBlock("alpha") +
		pluginBlock("echo", bins.echo2, bins.echo2Sum,
			fmt.Sprintf(`handle "echo" { allow = [%q] }`, strangerID), `handle "sleep" {}`) +
		pluginBlock("kv", bins.kv, bins.kvSum,
			fmt.Sprintf(`config = { dir = %q }`, kvDir), `handle "kv.get" {}`, `handle "kv.put" {}`)
	alpha.write(t, alphaV2)
	out := alpha.must(t, "reload")
	if !strings.Contains(out, "+kv") || !strings.Contains(out, "~echo") {
		t.Errorf("reload printed %q; want +kv and ~echo", out)
	}
	wantCode(t, "call to echo closed to beta", beta.cli(t, "call", "alpha", "echo", "hi"), exitFailed, "forbidden")
	wantCode(t, "call to revoked whoami", beta.cli(t, "call", "alpha", "whoami"), exitFailed, "no_such_handle")
	if ps := alpha.plugins(t); ps["echo"].Version != "2.0.0" || ps["kv"].State != stateRunning {
		t.Errorf("plugins after reload: %+v", ps)
	}
	beta.must(t, "call", "alpha", "kv.put", `{"key":"greeting","value":"hej"}`)
	if out := beta.must(t, "call", "alpha", "kv.get", `{"key":"greeting"}`); !strings.Contains(out, `"value":"hej"`) {
		t.Errorf("kv.get printed %q", out)
	}
	// The reload kept the connection: beta is connected from the same
	// address (a new connection would come from a new port).
	if connAfter := alpha.peers(t)["beta"]; !connAfter.Connected || connAfter.Addr != connBefore.Addr {
		t.Errorf("beta's connection after reload: %+v; before: %+v", connAfter, connBefore)
	}

	// An invalid file is refused with its position; the node keeps going.
	alpha.write(t, alphaV2+"bogus = 1\n")
	line := strings.Count(alphaV2, "\n") + 1
	wantCode(t, "reload of an invalid file", alpha.cli(t, "reload"), exitBadConfig, fmt.Sprintf("alpha.hcl:%d:1", line))
	beta.must(t, "call", "alpha", "kv.get", `{"key":"greeting"}`)
	alpha.write(t, alphaV2)

	// kill -9 of a plugin: the supervisor restarts it.
	echo := alpha.plugins(t)["echo"]
	if err := syscall.Kill(echo.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "echo to be restarted", pollTimeout, func() bool {
		p := alpha.plugins(t)["echo"]
		return p.State == stateRunning && p.Generation > echo.Generation && p.Pid != echo.Pid
	})
	beta.must(t, "call", "alpha", "sleep", "1ms")

	// revoke closes a handle at once; the next reload applies the file
	// again, which opens it.
	if out := alpha.must(t, "revoke", "echo", "sleep"); !strings.Contains(out, "revoked sleep") {
		t.Errorf("revoke printed %q", out)
	}
	wantCode(t, "call to a revoked handle", beta.cli(t, "call", "alpha", "sleep", "1ms"), exitFailed, "no_such_handle")
	if out := alpha.must(t, "reload"); out != "reloaded: peers unchanged; plugins ~echo (+handle sleep)\n" {
		t.Errorf("reload after revoking a handle printed %q", out)
	}
	beta.must(t, "call", "alpha", "sleep", "1ms")

	// A revoked plugin is listed as revoked; the reload that brings it
	// back says so, and the one after it reports nothing.
	alpha.must(t, "revoke", "echo")
	if p := alpha.plugins(t)["echo"]; p.State != string(plugin.StateRevoked) || p.Pid != 0 {
		t.Errorf("echo after revoke: %+v; want listed as revoked, with no process", p)
	}
	if out := alpha.must(t, "plugins"); !strings.Contains(out, "revoked") {
		t.Errorf("plugins after revoke printed %q", out)
	}
	if out := alpha.must(t, "reload"); out != "reloaded: peers unchanged; plugins +echo (restored: it was revoked)\n" {
		t.Errorf("reload after revoking the plugin printed %q", out)
	}
	if out := alpha.must(t, "reload"); out != "reloaded: peers unchanged; plugins unchanged\n" {
		t.Errorf("reload of an unchanged file printed %q", out)
	}
	beta.must(t, "call", "alpha", "sleep", "1ms")

	// SIGTERM to the called node with calls in flight: each finishes, and
	// the node exits 0 within its grace.
	check := slowCalls(t, beta, alpha)
	if code, took := alpha.terminate(t, grace+5*time.Second); code != 0 || took > grace {
		t.Errorf("alpha exited with %d after %s; want 0 within %s", code, took, grace)
	}
	check("SIGTERM to alpha")
	wantCode(t, "call to the stopped alpha", beta.cli(t, "call", "alpha", "echo", "x"), exitFailed)
	wantCode(t, "status of the stopped alpha", alpha.cli(t, "status"), exitNotRunning, "not running")

	// A restart keeps the identity, the trust list and kv's data.
	alpha.start(t)
	if id := strings.TrimSpace(alpha.must(t, "id")); id != alphaID {
		t.Errorf("alpha's ID after restart: %s, want %s", id, alphaID)
	}
	if p, ok := alpha.peers(t)["beta"]; !ok || p.ID != betaID {
		t.Errorf("alpha's trust list after restart: %+v", alpha.peers(t))
	}
	for _, f := range []string{trust.KeyfileName, trust.TrustFileName} {
		fi, err := os.Stat(filepath.Join(alpha.dir, "data", f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want mode 0600", f, err, fi.Mode())
		}
	}
	beta.must(t, "connect", "alpha", alpha.status(t).Listen)
	if out := beta.must(t, "call", "alpha", "kv.get", `{"key":"greeting"}`); !strings.Contains(out, `"value":"hej"`) {
		t.Errorf("kv.get after restart printed %q", out)
	}

	// SIGTERM to the calling node, whose control socket carries the CLI's
	// calls: they finish too.
	check = slowCalls(t, beta, alpha)
	if code, took := beta.terminate(t, grace+5*time.Second); code != 0 || took > grace {
		t.Errorf("beta exited with %d after %s; want 0 within %s", code, took, grace)
	}
	check("SIGTERM to beta")
	if code, _ := alpha.terminate(t, grace+5*time.Second); code != 0 {
		t.Errorf("alpha exited with %d after SIGTERM", code)
	}
}

// slowCalls starts three CLI calls from caller to callee's sleep handle
// and waits until callee runs them all. The returned function waits for the
// calls and fails the test unless each succeeded.
func slowCalls(t *testing.T, caller, callee *node) func(when string) {
	t.Helper()
	const n, d = 3, "1500ms"
	type outcome struct {
		r   result
		err error
	}
	out := make(chan outcome, n)
	for range n {
		go func() {
			r, err := runCLI(caller.bins.host, "", caller.args([]string{"call", callee.name, "sleep", d})...)
			out <- outcome{r, err}
		}()
	}
	poll.Until(t, "the slow calls to reach "+callee.name, pollTimeout, func() bool { return callee.status(t).Inflight >= n })
	return func(when string) {
		t.Helper()
		for range n {
			o := <-out
			if o.err != nil || o.r.code != exitOK || o.r.stdout != d+"\n" {
				t.Errorf("%s: a call in flight failed: %v, %v", when, o.r, o.err)
			}
		}
	}
}

func testBadInput(t *testing.T, bins *binaries) {
	alphaCfg := nodeBlock("alpha") + pluginBlock("echo", bins.echo, bins.echoSum, `handle "echo" {}`, `handle "sleep" {}`)
	alpha, beta, gamma := pair(t, bins, func(n *node) string { return alphaCfg })
	strangerID := strings.TrimSpace(gamma.must(t, "id"))

	// The commands that talk to the node read only the file's node block,
	// so they reach it when the rest of the file has gone bad; run and
	// reload check the whole file.
	t.Run("plugin binary missing", func(t *testing.T) {
		missing := filepath.Join(alpha.dir, "gone", "echo")
		alpha.write(t, nodeBlock("alpha")+pluginBlock("echo", missing, bins.echoSum, `handle "echo" {}`))
		t.Cleanup(func() { alpha.write(t, alphaCfg) })
		st := alpha.status(t)
		if st.Name != "alpha" || !st.Ready || len(st.Plugins) != 1 || st.Plugins[0].State != stateRunning {
			t.Errorf("status with the plugin binary missing: %+v", st)
		}
		if out := alpha.must(t, "status"); !strings.Contains(out, "echo") {
			t.Errorf("status printed %q; want the echo plugin listed", out)
		}
		if _, ok := alpha.plugins(t)["echo"]; !ok {
			t.Error("plugins does not list echo")
		}
		if _, ok := alpha.peers(t)["beta"]; !ok {
			t.Error("trust list lacks beta")
		}
		if id := strings.TrimSpace(alpha.must(t, "id")); id != st.ID {
			t.Errorf("id printed %s, status says %s", id, st.ID)
		}
		wantCode(t, "reload with the plugin binary missing", alpha.cli(t, "reload"), exitBadConfig,
			"the node kept its configuration", "Plugin binary not found", missing)
		wantCode(t, "run with the plugin binary missing", alpha.cli(t, "run"), exitBadConfig, "Plugin binary not found")
		beta.must(t, "call", "alpha", "echo", "still served")
	})

	t.Run("malformed config", func(t *testing.T) {
		bad := newNode(t, bins, t.TempDir(), "bad")
		bad.write(t, "node {\n  name     = \"bad\"\n  data_dir = \"./data\"\n  lisen    = \"127.0.0.1:0\"\n}\n")
		for _, cmd := range []string{"run", "status", "id"} {
			wantCode(t, cmd, bad.cli(t, cmd), exitBadConfig, "bad.hcl:4:3", `Did you mean "listen"?`)
		}
	})

	t.Run("node not running", func(t *testing.T) {
		for _, args := range [][]string{{"status"}, {"peers"}, {"call", "alpha", "echo"}, {"reload"}} {
			wantCode(t, args[0], gamma.cli(t, args...), exitNotRunning, "node is not running", "peernet-host run -config")
		}
	})

	t.Run("unknown peer or handle", func(t *testing.T) {
		wantCode(t, "unknown label", beta.cli(t, "call", "nobody", "echo"), exitFailed, `no trusted peer labelled "nobody"`)
		wantCode(t, "untrusted ID", beta.cli(t, "call", strangerID, "echo"), exitFailed)
		wantCode(t, "short ID", beta.cli(t, "trust", "add", "pn1aaaa", "x"), exitFailed, "bad peer id")
		// A typo in the middle: the last character also carries padding
		// bits, so changing it may make the text non-canonical instead.
		c := "a"
		if strangerID[10] == 'a' {
			c = "b"
		}
		typo := strangerID[:10] + c + strangerID[11:]
		wantCode(t, "mistyped ID", beta.cli(t, "call", typo, "echo"), exitFailed, "not a valid PeerID", "checksum")
		wantCode(t, "unknown handle", beta.cli(t, "call", "alpha", "nope"), exitFailed, "no_such_handle")
		wantCode(t, "unknown plugin", alpha.cli(t, "revoke", "nope"), exitFailed, "nope")
	})

	t.Run("control socket permissions", func(t *testing.T) {
		if err := os.Chmod(alpha.socket(), 0o666); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(alpha.socket(), 0o600) })
		wantCode(t, "trust add through an open socket", alpha.cli(t, "trust", "add", strangerID, "stranger"),
			exitFailed, "unsafe permissions", "0666", "0600")
		if err := os.Chmod(alpha.socket(), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, ok := alpha.peers(t)["stranger"]; ok {
			t.Error("the refused trust add changed the trust list")
		}
	})

	t.Run("second run on the same data dir", func(t *testing.T) {
		r := alpha.cli(t, "run")
		if r.code == exitOK || !strings.Contains(r.stderr, "locked") {
			t.Errorf("second run: %v; want a failure saying the data dir is locked", r)
		}
		if !alpha.running() {
			t.Fatal("the first alpha stopped")
		}
		beta.must(t, "call", "alpha", "echo", "still here")
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{},
			{"bogus"},
			{"status", "extra"},
			{"status", "-bogus"},
			{"trust"},
			{"trust", "add", strangerID},
			{"trust", "list", "extra"},
			{"connect", "alpha"},
			{"disconnect"},
			{"call", "alpha"},
			{"send"},
			{"revoke"},
			{"run", "extra"},
			{"id", "-timeout", "soon"},
		} {
			r, err := runCLI(bins.host, "", args...)
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, fmt.Sprintf("peernet-host %q", args), r, exitUsage)
		}
	})

	// Flags go before or after the arguments, as docs/operating.md
	// shows them; after "--" everything is an argument.
	t.Run("flags after arguments", func(t *testing.T) {
		for _, args := range [][]string{{"trust", "list", "-json"}, {"trust", "-json", "list"}, {"peers", "-json"}} {
			r, err := runCLI(bins.host, "", append(args, "-config", beta.cfg)...)
			var ps []control.Peer
			if err != nil || r.code != exitOK || json.Unmarshal([]byte(r.stdout), &ps) != nil || len(ps) != 1 || ps[0].Label != "alpha" {
				t.Errorf("peernet-host %s -config FILE: %v %v", strings.Join(args, " "), err, r)
			}
		}
		if out := beta.must(t, "call", "alpha", "echo", "--", "-json"); out != "-json\n" {
			t.Errorf("call alpha echo -- -json printed %q", out)
		}
	})

	t.Run("trust add of a trusted peer", func(t *testing.T) {
		alphaID := alpha.status(t).ID
		wantCode(t, "trust add under a new label", beta.cli(t, "trust", "add", alphaID, "a2"), exitFailed,
			`already trusted as "alpha"`, "peernet-host trust relabel "+alphaID+" a2")
		wantCode(t, "trust add of a label in use", beta.cli(t, "trust", "add", strangerID, "alpha"), exitFailed,
			`the label "alpha" already names `+alphaID)
		if ps := beta.peers(t); len(ps) != 1 || ps["alpha"].ID != alphaID {
			t.Errorf("refused trust adds changed the trust list: %+v", ps)
		}
		beta.must(t, "trust", "add", alphaID, "alpha") // the same again: nothing to refuse
		if out := beta.must(t, "trust", "relabel", "alpha", "a2"); !strings.Contains(out, `relabelled alpha as "a2"`) {
			t.Errorf("trust relabel printed %q", out)
		}
		beta.must(t, "call", "a2", "echo", "by the new label")
		beta.must(t, "trust", "relabel", alphaID, "alpha")
		beta.must(t, "call", "alpha", "echo", "by the old label again")
	})

	t.Run("call outcomes", func(t *testing.T) {
		// One message per outcome, in the status names of the docs,
		// whichever part of the path noticed the deadline first.
		const deadline = "peernet-host call: call sleep on alpha: deadline_exceeded\n"
		for _, c := range []struct{ timeout, sleep string }{{"1ms", "2s"}, {"1ms", "2s"}, {"1ms", "2s"}, {"300ms", "5s"}} {
			r := beta.cli(t, "call", "-timeout", c.timeout, "alpha", "sleep", c.sleep)
			if r.code != exitFailed || r.stderr != deadline || r.stdout != "" {
				t.Errorf("call -timeout %s of sleep %s: %v\nwant exit %d and %q", c.timeout, c.sleep, r, exitFailed, deadline)
			}
		}
		var ok struct {
			Status string  `json:"status"`
			Text   *string `json:"text"`
			Base64 []byte  `json:"base64"`
		}
		beta.mustJSON(t, &ok, "call", "alpha", "echo", "hi")
		if ok.Status != "ok" || ok.Text == nil || *ok.Text != "hi" || string(ok.Base64) != "hi" {
			t.Errorf("call -json of echo hi: %+v", ok)
		}
		ok.Text = nil
		if r := beta.cliIn(t, "\xff\xfe", "call", "-json", "alpha", "echo", "-"); r.code != exitOK ||
			json.Unmarshal([]byte(r.stdout), &ok) != nil || ok.Text != nil || string(ok.Base64) != "\xff\xfe" {
			t.Errorf("call -json of bytes that are not UTF-8: %v; want base64 only", r)
		}
		for _, c := range []struct {
			args         []string
			code         int
			status, kind string
		}{
			{[]string{"alpha", "nope"}, exitFailed, "no_such_handle", control.CodeRemote},
			{[]string{"-timeout", "1ms", "alpha", "sleep", "2s"}, exitFailed, "deadline_exceeded", control.CodeTimeout},
			{[]string{"nobody", "echo"}, exitFailed, "", control.CodeUnknownPeer},
		} {
			r := beta.cli(t, append([]string{"call", "-json"}, c.args...)...)
			var out struct{ Error control.Error }
			if r.code != c.code || r.stderr != "" || json.Unmarshal([]byte(r.stdout), &out) != nil ||
				out.Error.Status != c.status || out.Error.Code != c.kind || out.Error.Message == "" {
				t.Errorf("call -json %s: %v; want exit %d and a JSON error with status %q and code %q", strings.Join(c.args, " "), r, c.code, c.status, c.kind)
			}
		}
	})

	t.Run("help", func(t *testing.T) {
		names := make([]string, 0, len(commands))
		for name := range commands {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			r, err := runCLI(bins.host, "", name, "-h")
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, name+" -h", r, exitOK, "usage: peernet-host "+name, "-config")
		}
		for _, h := range []string{"-h", "--help"} {
			r, err := runCLI(bins.host, "", h)
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, h, r, exitOK, "Exit codes")
		}
		// help prints to standard output: the list, itself in it, and
		// each command's own help.
		r, err := runCLI(bins.host, "", "help")
		if err != nil || r.code != exitOK || !strings.Contains(r.stdout, "Exit codes") {
			t.Errorf("help: %v %v", err, r)
		}
		for _, name := range names {
			if !regexp.MustCompile(`(?m)^  ` + name + ` +\S`).MatchString(r.stdout) {
				t.Errorf("help does not list %s:\n%s", name, r.stdout)
			}
			h, err := runCLI(bins.host, "", "help", name)
			if err != nil || h.code != exitOK || !strings.HasPrefix(h.stdout, "usage: peernet-host "+name) || !strings.Contains(h.stdout, "-config") {
				t.Errorf("help %s: %v %v", name, err, h)
			}
		}
		if h, err := runCLI(bins.host, "", "help", "init"); err != nil || !strings.Contains(h.stdout, "-listen") || !strings.Contains(h.stdout, "-mdns") {
			t.Errorf("help init: %v %v", err, h)
		}
		if h, err := runCLI(bins.host, "", "help", "bogus"); err != nil || h.code != exitUsage {
			t.Errorf("help bogus: %v %v", err, h)
		}
	})

	t.Run("no configuration file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "none.hcl")
		for _, cmd := range []string{"status", "run", "id"} {
			r, err := runCLI(bins.host, "", cmd, "-config", missing)
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, cmd+" without a file", r, exitBadConfig, missing+" not found", "-config FILE", "$PEERNET_CONFIG", "peernet-host init")
		}
	})
}
