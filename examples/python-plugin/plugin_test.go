package pythonplugin_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/host/plugin"
	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/pluginclient"
	"github.com/peernet/peernet/pluginsdk/plugintest"
	"github.com/peernet/peernet/testing/peernettest"
	"github.com/peernet/peernet/testing/poll"
	"github.com/peernet/peernet/trust"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// interpreter is what plugin.py's "#!" line names.
const interpreter = "/usr/bin/python3"

// script copies plugin.py into a fresh directory, with old replaced by
// new, and returns the copy's path and SHA-256. It skips the test when the
// interpreter is missing.
func script(t testing.TB, old, new string) (path, sum string) {
	t.Helper()
	if _, err := os.Stat(interpreter); err != nil {
		t.Skipf("%s is missing (Debian package python3; .ci/run installs it): %v", interpreter, err)
	}
	data, err := os.ReadFile("plugin.py")
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "plugin.py")
	return path, write(t, path, bytes.ReplaceAll(data, []byte(old), []byte(new)))
}

// write replaces the file at path with data, by a rename, and returns the
// new content's SHA-256.
func write(t testing.TB, path string, data []byte) string {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func relayArgs(peer trust.PeerID, handle, args string) []byte {
	b, _ := json.Marshal(map[string]string{"peer": peer.String(), "handle": handle, "args": args})
	return b
}

// TestPlugin runs plugin.py behind the node's plugin driver: its handles,
// its callbacks, deadlines and cancellation, and its two ways to stop.
func TestPlugin(t *testing.T) {
	path, sum := script(t, "", "")
	other, err := trust.PeerIDFromBytes(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	callback := make(chan struct{}) // closed: the host answers callbacks
	host := &plugintest.Host{CallFunc: func(ctx context.Context, peer pluginsdk.PeerID, handle string, args []byte) ([]byte, error) {
		select {
		case <-callback:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if peer != other {
			return nil, pluginsdk.ErrNotConnected
		}
		return fmt.Appendf(nil, "%s(%s)", handle, args), nil
	}}
	p := plugintest.StartProcess(t, path, plugintest.Options{SHA256: sum, Config: []byte(`{"prefix": "> "}`), Host: host})
	if d := p.Client().Description(); d.Name != "python-example" || d.Version != "1.0.0" || len(d.Handles) != 3 {
		t.Fatalf("description %+v", d)
	}
	caller, err := trust.PeerIDFromBytes(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), peernettest.Timeout)
	defer cancel()
	do := func(ctx context.Context, handle string, args []byte) (string, error) {
		out, err := p.Call(ctx, caller, handle, args)
		return string(out), err
	}

	if out, err := do(ctx, "py.echo", []byte("hi")); out != "> hi" || err != nil {
		t.Fatalf("py.echo = %q, %v; want %q", out, err, "> hi")
	}
	if _, err := do(ctx, "nope", nil); !errors.Is(err, pluginsdk.ErrNoSuchHandle) {
		t.Fatalf("nope: %v, want no_such_handle", err)
	}
	if _, err := do(ctx, "py.relay", []byte("{")); !errors.Is(err, pluginsdk.ErrHandlerError) {
		t.Fatalf("py.relay with bad args: %v, want handler_error", err)
	}

	// A callback that the caller cancels: the plugin cancels it too.
	cctx, ccancel := context.WithCancel(ctx)
	relayed := make(chan error, 1)
	go func() { _, err := do(cctx, "py.relay", relayArgs(other, "greet", "x")); relayed <- err }()
	poll.Until(t, "the plugin calls back", 0, func() bool { return len(host.Calls()) == 1 })
	ccancel()
	if err := <-relayed; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled py.relay: %v", err)
	}
	poll.Until(t, "the plugin has no call in flight", 0, func() bool { return p.Client().InFlight() == 0 })

	close(callback)
	if out, err := do(ctx, "py.relay", relayArgs(other, "greet", "x")); out != "greet(x)" || err != nil {
		t.Fatalf("py.relay = %q, %v", out, err)
	}
	c := host.Calls()
	if last := c[len(c)-1]; last.Peer != other || last.Handle != "greet" || string(last.Args) != "x" {
		t.Fatalf("callback %+v", last)
	}
	stranger, err := trust.PeerIDFromBytes(bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := do(ctx, "py.relay", relayArgs(stranger, "greet", "x")); !errors.Is(err, pluginsdk.ErrHandlerError) ||
		!bytes.Contains([]byte(err.Error()), []byte("not_connected")) {
		t.Fatalf("py.relay to a peer not connected: %v, want handler_error naming not_connected", err)
	}

	// A deadline shorter than the slow handle.
	dctx, dcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	start := time.Now()
	_, err = do(dctx, "py.slow", []byte("60000"))
	dcancel()
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 30*time.Second {
		t.Fatalf("py.slow past its deadline: %v after %v", err, time.Since(start))
	}
	if out, err := do(ctx, "py.slow", []byte("10")); out != "slept 10" || err != nil {
		t.Fatalf("py.slow 10 = %q, %v", out, err)
	}

	// Stop retires the channel; a slow call in flight finishes first.
	slow := make(chan error, 1)
	go func() {
		out, err := do(ctx, "py.slow", []byte("300"))
		if err == nil && out != "slept 300" {
			err = fmt.Errorf("py.slow = %q", out)
		}
		slow <- err
	}()
	poll.Until(t, "py.slow is in flight", 0, func() bool { return p.Client().InFlight() == 1 })
	if err := p.Client().Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := <-slow; err != nil {
		t.Fatalf("the call in flight during Stop: %v", err)
	}
	<-p.Client().Exited()
	if err := p.Client().ExitErr(); err != nil {
		t.Fatalf("after Stop the plugin exited with %v, want status 0", err)
	}

	// SIGTERM: the plugin retires the channel itself and exits with
	// status 0; for the node that is the end of the plugin.
	q := plugintest.StartProcess(t, path, plugintest.Options{SHA256: sum})
	if err := syscall.Kill(q.Client().Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-q.Client().Exited():
	case <-ctx.Done():
		t.Fatal("the plugin did not exit on SIGTERM")
	}
	if err := q.Client().ExitErr(); err != nil {
		t.Fatalf("on SIGTERM the plugin exited with %v, want status 0", err)
	}
	if _, err := q.Call(ctx, caller, "py.echo", nil); err == nil {
		t.Fatal("a call after the plugin stopped succeeded")
	}
}

// TestTwoNodes runs plugin.py under a node's supervisor, called by a peer:
// its handles, a callback to the calling peer, a deadline, a crash, a swap
// under continuous calls, and an edit of the script that no configuration
// names.
func TestTwoNodes(t *testing.T) {
	path, sum := script(t, "", "")
	nodes := peernettest.Nodes(t, 2, host.Config{})
	a, b := nodes[0], nodes[1]
	if err := b.Expose("greet", host.HandlerFunc(func(_ context.Context, req *host.Request) ([]byte, error) {
		return fmt.Appendf(nil, "hello %s from %s", req.Args, req.Caller.Short()), nil
	}), host.ExposeOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := plugin.NewSupervisor(plugin.SupervisorConfig{Node: a, Logger: plugintest.TestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	cfg := plugin.Config{
		Name:         "py",
		Path:         path,
		SHA256:       sum,
		PluginConfig: []byte(`{"prefix": "> "}`),
		GracePeriod:  5 * time.Second,
		Restart:      plugin.RestartPolicy{MaxCrashes: 3, Window: time.Minute, BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond},
		Handles:      []plugin.Handle{{Name: "py.echo"}, {Name: "py.relay"}, {Name: "py.slow"}},
	}
	apply := func(s *plugin.Supervisor, cfg plugin.Config) error {
		ctx, cancel := context.WithTimeout(context.Background(), peernettest.Timeout)
		defer cancel()
		return s.Apply(ctx, []plugin.Config{cfg})
	}
	if err := apply(s, cfg); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	status := func(s *plugin.Supervisor) plugin.Status {
		for _, st := range s.Status() {
			if st.Name == "py" {
				return st
			}
		}
		return plugin.Status{}
	}
	call := func(ctx context.Context, handle string, args []byte) (string, error) {
		out, err := b.Call(ctx, a.Identity(), handle, args)
		return string(out), err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*peernettest.Timeout)
	defer cancel()

	if out, err := call(ctx, "py.echo", []byte("hi")); out != "> hi" || err != nil {
		t.Fatalf("py.echo = %q, %v", out, err)
	}
	want := fmt.Sprintf("hello x from %s", a.Identity().Short())
	if out, err := call(ctx, "py.relay", relayArgs(b.Identity(), "greet", "x")); out != want || err != nil {
		t.Fatalf("py.relay = %q, %v; want %q", out, err, want)
	}

	dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = call(dctx, "py.slow", []byte("60000"))
	dcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("py.slow past its deadline: %v", err)
	}
	peernettest.Eventually(t, "the slow handler has ended", func() bool { return status(s).InFlight == 0 })

	// A crash: the supervisor restarts the plugin, which serves again.
	first := status(s)
	if err := syscall.Kill(first.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	peernettest.Eventually(t, "the plugin is restarted", func() bool {
		st := status(s)
		return st.State == plugin.StateRunning && st.Generation > first.Generation && st.Restarts == 1
	})
	if out, err := call(ctx, "py.echo", []byte("again")); out != "> again" || err != nil {
		t.Fatalf("py.echo after the restart = %q, %v", out, err)
	}

	// A swap to an edited script under continuous calls: none fails.
	var (
		mu     sync.Mutex
		ok     int
		failed []error
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				arg := fmt.Sprintf("%d-%d", w, i)
				out, err := call(ctx, "py.echo", []byte(arg))
				if err == nil && out != "> "+arg {
					err = fmt.Errorf("py.echo(%q) = %q", arg, out)
				}
				mu.Lock()
				if err != nil {
					failed = append(failed, err)
				} else {
					ok++
				}
				mu.Unlock()
			}
		}()
	}
	calls := func() int { mu.Lock(); defer mu.Unlock(); return ok }
	peernettest.Eventually(t, "calls before the swap", func() bool { return calls() >= 50 })
	cfg.SHA256 = write(t, path, bytes.Replace(mustRead(t, path), []byte(`VERSION = "1.0.0"`), []byte(`VERSION = "2.0.0"`), 1))
	if err := apply(s, cfg); err != nil {
		t.Fatalf("swap: %v", err)
	}
	if st := status(s); st.Version != "2.0.0" || st.SHA256 != cfg.SHA256 {
		t.Fatalf("after the swap: %+v", st)
	}
	before := calls()
	peernettest.Eventually(t, "calls after the swap", func() bool { return calls() >= before+50 })
	close(stop)
	wg.Wait()
	t.Logf("%d calls during the swap, %d failed", ok, len(failed))
	if len(failed) > 0 {
		t.Fatalf("%d calls failed during the swap, first: %v", len(failed), failed[0])
	}

	// An edit that no configuration names: the pinned content keeps
	// running, across a crash too; a new start from the file refuses it.
	write(t, path, bytes.Replace(mustRead(t, path), []byte(`VERSION = "2.0.0"`), []byte(`VERSION = "3.0.0"`), 1))
	second := status(s)
	if err := syscall.Kill(second.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	peernettest.Eventually(t, "the plugin is restarted", func() bool {
		st := status(s)
		return st.State == plugin.StateRunning && st.Generation > second.Generation
	})
	if st := status(s); st.Version != "2.0.0" {
		t.Fatalf("after a crash the edited script runs: %+v", st)
	}
	if out, err := call(ctx, "py.echo", []byte("pinned")); out != "> pinned" || err != nil {
		t.Fatalf("py.echo = %q, %v", out, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	restarted, err := plugin.NewSupervisor(plugin.SupervisorConfig{Node: a, Logger: plugintest.TestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restarted.Close() })
	if err := apply(restarted, cfg); !errors.Is(err, pluginclient.ErrChecksum) {
		t.Fatalf("starting the edited script under the old digest: %v, want %v", err, pluginclient.ErrChecksum)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDocQuotesPlugin keeps docs/plugins.md in step with plugin.py: every
// Python block there is an excerpt of it.
func TestDocQuotesPlugin(t *testing.T) {
	doc := mustRead(t, "../../docs/plugins.md")
	src := mustRead(t, "plugin.py")
	blocks := regexp.MustCompile("(?ms)^```python\n(.*?)^```$").FindAllSubmatch(doc, -1)
	if len(blocks) == 0 {
		t.Fatal("docs/plugins.md shows no Python")
	}
	for i, b := range blocks {
		if !bytes.Contains(src, b[1]) {
			t.Errorf("Python block %d of docs/plugins.md is not an excerpt of plugin.py:\n%s", i+1, b[1])
		}
	}
}
