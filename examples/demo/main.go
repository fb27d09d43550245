// Command demo runs two peernet-host daemons, alpha and beta, on this
// machine's loopback interface and operates them the way a person would,
// through the peernet-host command line: it builds the binaries, creates the
// nodes' identities, renders their configuration files from the templates in
// examples/alpha and examples/beta, starts both nodes, makes them trust and
// connect to each other, calls plugin handles, swaps a plugin for a rebuilt
// binary while calls keep flowing, and stops both nodes with SIGTERM.
//
// Run it from anywhere in the repository with "make demo" or
// "go run ./examples/demo". It needs only Go. Everything it writes goes to
// .demo/ at the repository root (ignored by git), and it stops every process
// it started, whether it succeeds or fails.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/template"
	"time"
)

// Bounds on how long the demo waits for things.
const (
	startTimeout   = 20 * time.Second // a node answering on its control socket
	commandTimeout = 30 * time.Second // one peernet-host command
	stopTimeout    = 15 * time.Second // a node exiting after SIGTERM
	swapCalls      = 20               // calls made after the swap before the loop stops
)

func main() { os.Exit(runDemo()) }

// runDemo runs the demo and returns the exit status. Every daemon it starts
// is stopped before it returns, also when it fails or panics.
func runDemo() int {
	dir := flag.String("dir", "", "work `directory` (default: .demo at the repository root)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := newDemo(*dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		return 1
	}
	defer d.cleanup() // for a panic; cleanup is idempotent
	err = d.run(ctx)
	d.cleanup()
	if err == nil {
		return 0
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("interrupted (%v); every process it started is stopped", err)
	}
	fmt.Fprintf(os.Stderr, "\ndemo FAILED: %v\n", err)
	d.showLogs()
	return 1
}

// demo holds the state of one run.
type demo struct {
	root  string // the repository root; commands run here
	work  string // where binaries, configurations and data go, relative to root
	bin   string // work/bin
	gocmd string

	step, steps int

	mu    sync.Mutex
	nodes []*node // started daemons, stopped by cleanup

	alpha, beta *node
	metrics     string // alpha's metrics endpoint
}

// node is one peernet-host daemon of the demo.
type node struct {
	name string
	cfg  string // configuration file, relative to root
	log  string // its stderr, relative to root
	id   string // PeerID
	addr string // listen address

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, set before done closes
}

func newDemo(dir string) (*demo, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	work := ".demo"
	if dir != "" {
		if work, err = filepath.Abs(dir); err != nil {
			return nil, err
		}
	}
	gocmd := os.Getenv("GO")
	if gocmd == "" {
		gocmd = "go"
	}
	d := &demo{root: root, work: work, bin: filepath.Join(work, "bin"), gocmd: gocmd, steps: 10}
	d.alpha = &node{name: "alpha", cfg: filepath.Join(work, "alpha", "alpha.hcl"), log: filepath.Join(work, "alpha", "run.log")}
	d.beta = &node{name: "beta", cfg: filepath.Join(work, "beta", "beta.hcl"), log: filepath.Join(work, "beta", "run.log")}
	return d, nil
}

// moduleRoot finds the directory of PeerNet's go.mod, upwards from the
// working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/peernet/peernet\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the demo from inside the PeerNet repository")
		}
		dir = parent
	}
}

func (d *demo) run(ctx context.Context) error {
	if err := d.build(ctx); err != nil {
		return err
	}
	if err := d.identities(ctx); err != nil {
		return err
	}
	if err := d.configure(); err != nil {
		return err
	}
	if err := d.start(ctx); err != nil {
		return err
	}
	if err := d.trust(ctx); err != nil {
		return err
	}
	if err := d.connect(ctx); err != nil {
		return err
	}
	if err := d.calls(ctx); err != nil {
		return err
	}
	if err := d.swap(ctx); err != nil {
		return err
	}
	if err := d.inspect(ctx); err != nil {
		return err
	}
	if err := d.shutdown(); err != nil {
		return err
	}
	fmt.Printf("\nDone. The nodes' files and logs are in %s/; \"make demo\" starts afresh.\n", d.work)
	return nil
}

// header prints a step's title.
func (d *demo) header(title string) {
	d.step++
	fmt.Printf("\n==> [%d/%d] %s\n", d.step, d.steps, title)
}

// say prints an explanation under the current step.
func say(format string, args ...any) { fmt.Printf("    "+format+"\n", args...) }

// 1. Build the host and the two plugins.
func (d *demo) build(ctx context.Context) error {
	d.header("Build peernet-host and the echo and kv plugins")
	for _, b := range []struct{ out, pkg string }{
		{"peernet-host", "./cmd/peernet-host"},
		{"echo", "./plugins/echo"},
		{"kv", "./plugins/kv"},
	} {
		if err := d.goBuild(ctx, filepath.Join(d.bin, b.out), b.pkg); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) goBuild(ctx context.Context, out, pkg string, flags ...string) error {
	args := append([]string{"build"}, flags...)
	args = append(args, "-o", out, pkg)
	fmt.Printf("    $ go %s\n", strings.Join(quoteAll(args), " "))
	cmd := exec.CommandContext(ctx, d.gocmd, args...)
	cmd.Dir = d.root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// 2. Create each node's identity with init, and read its PeerID.
func (d *demo) identities(ctx context.Context) error {
	d.header("Create the identities: peernet-host init, then peernet-host id")
	for _, n := range []*node{d.alpha, d.beta} {
		if err := os.RemoveAll(d.abs(filepath.Dir(n.cfg))); err != nil {
			return err
		}
		if err := os.MkdirAll(d.abs(filepath.Dir(n.cfg)), 0o700); err != nil {
			return err
		}
		if _, err := d.cli(ctx, n, true, "init", "-name", n.name); err != nil {
			return err
		}
		out, err := d.cli(ctx, n, true, "id")
		if err != nil {
			return err
		}
		n.id = strings.TrimSpace(out)
	}
	say("The private key is in data/identity.key (mode 0600); the PeerID is its public half.")
	return nil
}

// 3. Render the configuration files from the templates.
func (d *demo) configure() error {
	d.header("Write the configurations from examples/alpha and examples/beta")
	for _, addr := range []*string{&d.alpha.addr, &d.beta.addr, &d.metrics} {
		var err error
		if *addr, err = freePort(); err != nil {
			return err
		}
	}
	if err := d.renderAlpha("echo"); err != nil {
		return err
	}
	echoSum, err := d.sum("echo")
	if err != nil {
		return err
	}
	err = d.render(d.beta, "examples/beta/beta.hcl.tmpl", map[string]string{
		"Listen":     d.beta.addr,
		"AlphaID":    d.alpha.id,
		"EchoPath":   d.abs(d.bin, "echo"),
		"EchoSHA256": echoSum,
	})
	if err != nil {
		return err
	}
	say("alpha listens on %s and exposes echo, whoami, kv.get and kv.put (kv.put to beta only);", d.alpha.addr)
	say("its metrics are at http://%s/metrics.", d.metrics)
	say("beta listens on %s and exposes echo to alpha only.", d.beta.addr)
	return nil
}

// renderAlpha writes alpha's configuration with the echo binary named echo
// in the bin directory.
func (d *demo) renderAlpha(echo string) error {
	echoSum, err := d.sum(echo)
	if err != nil {
		return err
	}
	kvSum, err := d.sum("kv")
	if err != nil {
		return err
	}
	return d.render(d.alpha, "examples/alpha/alpha.hcl.tmpl", map[string]string{
		"Listen":     d.alpha.addr,
		"BetaID":     d.beta.id,
		"EchoPath":   d.abs(d.bin, echo),
		"EchoSHA256": echoSum,
		"KVPath":     d.abs(d.bin, "kv"),
		"KVSHA256":   kvSum,
		"KVDir":      d.abs(filepath.Dir(d.alpha.cfg), "kv"),
		"Metrics":    d.metrics,
	})
}

// render fills the template at tmpl (relative to root) with fields and
// writes it to n's configuration file.
func (d *demo) render(n *node, tmpl string, fields map[string]string) error {
	out, err := renderFile(d.abs(tmpl), fields)
	if err != nil {
		return err
	}
	if err := os.WriteFile(d.abs(n.cfg), out, 0o644); err != nil {
		return err
	}
	say("wrote %s from %s", n.cfg, tmpl)
	return nil
}

// renderFile executes the template file at path with fields; a field the
// template uses but fields lacks is an error.
func renderFile(path string, fields map[string]string) ([]byte, error) {
	t, err := template.New(filepath.Base(path)).Option("missingkey=error").ParseFiles(path)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, fields); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// sum returns the SHA-256 of a binary in the bin directory, in hex.
func (d *demo) sum(name string) (string, error) {
	b, err := os.ReadFile(d.abs(d.bin, name))
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

// abs returns the absolute path of elem joined under dir (relative to root).
func (d *demo) abs(dir string, elem ...string) string {
	p := filepath.Join(append([]string{dir}, elem...)...)
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.root, p)
}

// freePort returns a loopback address with a port that is free right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// 4. Start both daemons.
func (d *demo) start(ctx context.Context) error {
	d.header("Start both nodes: peernet-host run")
	for _, n := range []*node{d.alpha, d.beta} {
		if err := d.launch(n); err != nil {
			return err
		}
	}
	for _, n := range []*node{d.alpha, d.beta} {
		if err := d.waitUp(ctx, n); err != nil {
			return err
		}
		say("%s is running (pid %d), logging to %s", n.name, n.cmd.Process.Pid, n.log)
	}
	return nil
}

func (d *demo) launch(n *node) error {
	fmt.Printf("    $ peernet-host run -config %s 2>%s &\n", n.cfg, n.log)
	logf, err := os.Create(d.abs(n.log))
	if err != nil {
		return err
	}
	n.cmd = exec.Command(d.abs(d.bin, "peernet-host"), "run", "-config", n.cfg)
	n.cmd.Dir = d.root
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	n.done = make(chan struct{})
	d.mu.Lock()
	d.nodes = append(d.nodes, n)
	d.mu.Unlock()
	go func() {
		n.err = n.cmd.Wait()
		logf.Close()
		close(n.done)
	}()
	return nil
}

// waitUp polls the node's status until it says it is ready: its control
// socket answers and its plugins have been started.
func (d *demo) waitUp(ctx context.Context, n *node) error {
	deadline := time.Now().Add(startTimeout)
	for {
		var st struct {
			Ready bool `json:"ready"`
		}
		out, err := d.quiet(ctx, n, "status", "-json")
		if err == nil && json.Unmarshal([]byte(out), &st) == nil && st.Ready {
			return nil
		}
		select {
		case <-n.done:
			return fmt.Errorf("%s exited while starting: %v (see %s)", n.name, n.err, n.log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer on its control socket within %s (see %s)", n.name, startTimeout, n.log)
		}
	}
}

// 5. Each node trusts the other.
func (d *demo) trust(ctx context.Context) error {
	d.header("Trust each other: peernet-host trust add")
	say("A node refuses every connection from a key that is not on its trust list.")
	if _, err := d.cli(ctx, d.alpha, true, "trust", "add", d.beta.id, "beta"); err != nil {
		return err
	}
	_, err := d.cli(ctx, d.beta, true, "trust", "add", d.alpha.id, "alpha")
	return err
}

// 6. beta dials alpha.
func (d *demo) connect(ctx context.Context) error {
	d.header("Connect: beta dials alpha (Noise XX handshake, both keys checked)")
	if _, err := d.cli(ctx, d.beta, true, "connect", "alpha", d.alpha.addr); err != nil {
		return err
	}
	_, err := d.cli(ctx, d.alpha, true, "peers")
	return err
}

// 7. Calls both ways, and kv.
func (d *demo) calls(ctx context.Context) error {
	d.header("Call plugin handles: echo, whoami, kv.put, kv.get")
	steps := []struct {
		n    *node
		args []string
		want string
	}{
		{d.beta, []string{"call", "alpha", "echo", "hello from beta"}, "hello from beta"},
		{d.beta, []string{"call", "alpha", "whoami"}, d.beta.id},
		{d.alpha, []string{"call", "beta", "echo", "hello back from alpha"}, "hello back from alpha"},
		{d.beta, []string{"call", "alpha", "kv.put", `{"key":"greeting","value":"hej"}`}, "{}"},
		{d.beta, []string{"call", "alpha", "kv.get", `{"key":"greeting"}`}, `{"found":true,"value":"hej"}`},
	}
	for _, s := range steps {
		out, err := d.cli(ctx, s.n, true, s.args...)
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(out); !jsonEqual(got, s.want) {
			return fmt.Errorf("%s: got %q, want %q", strings.Join(s.args, " "), got, s.want)
		}
	}
	say("A handle the plugin serves but the configuration does not expose stays closed:")
	if _, err := d.cli(ctx, d.beta, true, "call", "alpha", "sleep", "1s"); err == nil {
		return errors.New("alpha's unexposed sleep handle answered")
	}
	return nil
}

// jsonEqual compares a and b as JSON when both are JSON, else as text.
func jsonEqual(a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) == nil && json.Unmarshal([]byte(b), &vb) == nil {
		ja, _ := json.Marshal(va)
		jb, _ := json.Marshal(vb)
		return bytes.Equal(ja, jb)
	}
	return a == b
}

// 8. Swap echo for a rebuilt binary while beta keeps calling it.
func (d *demo) swap(ctx context.Context) error {
	d.header("Swap alpha's echo plugin for a rebuilt binary while beta keeps calling it")
	if err := d.goBuild(ctx, filepath.Join(d.bin, "echo-2.0.0"), "./plugins/echo", "-ldflags", "-X main.version=2.0.0"); err != nil {
		return err
	}

	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; loopCtx.Err() == nil; i++ {
				msg := fmt.Sprintf("ping %d.%d", w, i)
				out, err := d.quiet(loopCtx, d.beta, "call", "alpha", "echo", msg)
				switch {
				case loopCtx.Err() != nil:
					// Cancelled by the demo, not a failure of the call.
				case err != nil:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				case strings.TrimSpace(out) != msg:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Errorf("echo returned %q for %q", out, msg))
				default:
					ok.Add(1)
				}
			}
		}()
	}
	stop := func() int64 {
		stopLoop()
		wg.Wait()
		return failed.Load()
	}

	say("beta is calling alpha's echo in a loop, from two shells at once.")
	if err := waitFor(ctx, 10*time.Second, func() bool { return ok.Load() >= 5 }); err != nil {
		stop()
		return fmt.Errorf("the call loop did not get going: %w", err)
	}
	if err := d.renderAlpha("echo-2.0.0"); err != nil {
		stop()
		return err
	}
	say("alpha.hcl now names %s and its SHA-256; reload starts it, checks it,", filepath.Join(d.bin, "echo-2.0.0"))
	say("routes new calls to it and lets the old process finish its calls.")
	before := ok.Load()
	if _, err := d.cli(ctx, d.alpha, true, "reload"); err != nil {
		stop()
		return err
	}
	during := ok.Load() - before
	if err := waitFor(ctx, 10*time.Second, func() bool { return ok.Load() >= before+during+swapCalls }); err != nil {
		stop()
		return fmt.Errorf("calls did not continue after the swap: %w", err)
	}
	if n := stop(); n > 0 {
		return fmt.Errorf("%d of %d calls failed during the swap; the first: %v", n, n+ok.Load(), firstErr.Load())
	}
	say("calls: %d before the reload, %d while it ran, %d after; failures: 0",
		before, during, ok.Load()-before-during)
	return nil
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// 9. Show the state of the nodes.
func (d *demo) inspect(ctx context.Context) error {
	d.header("Inspect: peernet-host status, plugins, peers; alpha's metrics")
	if _, err := d.cli(ctx, d.alpha, true, "status"); err != nil {
		return err
	}
	out, err := d.cli(ctx, d.alpha, true, "plugins")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "2.0.0") {
		return errors.New("alpha's echo plugin does not report version 2.0.0 after the swap")
	}
	if _, err = d.cli(ctx, d.beta, true, "peers"); err != nil {
		return err
	}
	return d.showMetrics(ctx)
}

// showMetrics prints alpha's request counters from its metrics endpoint.
func (d *demo) showMetrics(ctx context.Context) error {
	url := "http://" + d.metrics + "/metrics"
	fmt.Printf("    $ curl -s %s | grep ^peernet_requests_total\n", url)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetching alpha's metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("fetching alpha's metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching alpha's metrics: %s", resp.Status)
	}
	var lines []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "peernet_requests_total") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return errors.New("alpha's metrics have no peernet_requests_total")
	}
	indent(os.Stdout, strings.Join(lines, "\n"))
	return nil
}

// 10. Stop both nodes with SIGTERM.
func (d *demo) shutdown() error {
	d.header("Stop both nodes with SIGTERM")
	for _, n := range []*node{d.beta, d.alpha} {
		fmt.Printf("    $ kill -TERM %d   # %s\n", n.cmd.Process.Pid, n.name)
		start := time.Now()
		if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			return fmt.Errorf("signalling %s: %w", n.name, err)
		}
		select {
		case <-n.done:
		case <-time.After(stopTimeout):
			return fmt.Errorf("%s did not exit within %s of SIGTERM", n.name, stopTimeout)
		}
		if n.err != nil {
			return fmt.Errorf("%s exited with %v (see %s)", n.name, n.err, n.log)
		}
		say("%s exited with status 0 after %s", n.name, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// cli runs peernet-host with -config for node n; when show is set it prints
// the command and its output. It returns the standard output.
func (d *demo) cli(ctx context.Context, n *node, show bool, args ...string) (string, error) {
	full := append([]string{args[0], "-config", n.cfg}, args[1:]...)
	if show {
		fmt.Printf("    $ peernet-host %s\n", strings.Join(quoteAll(full), " "))
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.abs(d.bin, "peernet-host"), full...)
	cmd.Dir = d.root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if show {
		indent(os.Stdout, stdout.String())
		indent(os.Stdout, stderr.String())
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("peernet-host %s: %v: %s", strings.Join(full, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// quiet is cli without printing.
func (d *demo) quiet(ctx context.Context, n *node, args ...string) (string, error) {
	return d.cli(ctx, n, false, args...)
}

func indent(w io.Writer, s string) {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return
	}
	for _, line := range strings.Split(s, "\n") {
		fmt.Fprintf(w, "      %s\n", line)
	}
}

// quoteAll quotes the arguments a shell would need quoted.
func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \"'{}$*?;&|<>()\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return out
}

// cleanup stops every daemon still running: SIGTERM, then SIGKILL if it
// does not exit in time. The plugins die with their host.
func (d *demo) cleanup() {
	d.mu.Lock()
	nodes := d.nodes
	d.mu.Unlock()
	for _, n := range nodes {
		select {
		case <-n.done:
			continue
		default:
		}
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(stopTimeout):
			n.cmd.Process.Kill()
			<-n.done
		}
	}
}

// showLogs prints the end of each started node's log, for a failed run.
func (d *demo) showLogs() {
	d.mu.Lock()
	nodes := d.nodes
	d.mu.Unlock()
	for _, n := range nodes {
		b, err := os.ReadFile(d.abs(n.log))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(os.Stderr, "\nlast lines of %s:\n", n.log)
		indent(os.Stderr, strings.Join(lines, "\n"))
	}
}
