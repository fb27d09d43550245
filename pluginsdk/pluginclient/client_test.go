package pluginclient_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/pluginclient"
	"github.com/peernet/peernet/pluginsdk/plugintest"
	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/testing/peernettest"
	"github.com/peernet/peernet/testing/poll"
	"github.com/peernet/peernet/trust"
)

const testPlugin = "github.com/peernet/peernet/pluginsdk/pluginclient/internal/testplugin"

// hostModeEnv makes the test binary act as a host process that launches the
// plugin at its value (see TestPdeathsig).
const hostModeEnv = "PLUGINCLIENT_TEST_HOST_PLUGIN"

func TestMain(m *testing.M) {
	if path := os.Getenv(hostModeEnv); path != "" {
		os.Exit(runHost(path))
	}
	goleak.VerifyTestMain(m)
}

func launch(t testing.TB, edit func(*pluginclient.LaunchConfig)) *pluginclient.Client {
	t.Helper()
	path, sum := plugintest.Build(t, testPlugin)
	cfg := pluginclient.LaunchConfig{
		Name:   "testplugin",
		Path:   path,
		SHA256: sum,
		Logger: plugintest.TestLogger(t),
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pluginclient.Launch(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Logf("Stop: %v", err) // tests that care call Stop themselves
		}
	})
	return c
}

func call(ctx context.Context, c *pluginclient.Client, handle, args string) (string, error) {
	out, err := c.Call(ctx, &pluginsdk.Request{Handle: handle, Args: []byte(args)})
	return string(out), err
}

func mustCall(t testing.TB, c *pluginclient.Client, handle, args string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := call(ctx, c, handle, args)
	if err != nil {
		t.Fatalf("%s(%q): %v", handle, args, err)
	}
	return out
}

func testPeer(t testing.TB, seed byte) pluginsdk.PeerID {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	id, err := trust.PeerIDFromPublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestLaunch(t *testing.T) {
	caller := testPeer(t, 1)
	c := launch(t, func(cfg *pluginclient.LaunchConfig) { cfg.Env = []string{"FOO=bar"} })

	d := c.Description()
	if d.Name != "testplugin" || d.Version != "0.0.1" || len(d.Handles) == 0 {
		t.Fatalf("Description = %+v", d)
	}
	if !alive(c.Pid()) {
		t.Fatalf("Pid %d is not a live process", c.Pid())
	}
	if got := mustCall(t, c, "echo", "hi"); got != "hi" {
		t.Fatalf("echo = %q", got)
	}
	out, err := c.Call(context.Background(), &pluginsdk.Request{Caller: caller, Handle: "caller"})
	if err != nil || string(out) != caller.String()+" call" {
		t.Fatalf("caller = %q, %v; want %q", out, err, caller.String()+" call")
	}

	env := strings.Split(mustCall(t, c, "env", ""), "\n")
	has := func(prefix string) bool {
		for _, kv := range env {
			if strings.HasPrefix(kv, prefix) {
				return true
			}
		}
		return false
	}
	for _, want := range []string{"FOO=bar", pluginsdk.MagicCookieKey + "=", pluginsdk.LogLevelEnv + "=info", "PLUGIN_UNIX_SOCKET_DIR="} {
		if !has(want) {
			t.Errorf("plugin environment lacks %s: %q", want, env)
		}
	}
	if has("PATH=") || has("HOME=") {
		t.Errorf("plugin inherited the host's environment: %q", env)
	}
}

func TestLaunchErrors(t *testing.T) {
	path, sum := plugintest.Build(t, testPlugin)
	wrong := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		edit    func(*pluginclient.LaunchConfig)
		wantIs  error
		wantMsg []string
	}{
		{name: "checksum mismatch", edit: func(c *pluginclient.LaunchConfig) { c.SHA256 = wrong },
			wantIs: pluginclient.ErrChecksum, wantMsg: []string{sum, wrong}},
		{name: "checksum upper case ok", edit: func(c *pluginclient.LaunchConfig) { c.SHA256 = strings.ToUpper(sum) }},
		{name: "checksum malformed", edit: func(c *pluginclient.LaunchConfig) { c.SHA256 = "xyz" }, wantMsg: []string{"64 hex digits"}},
		{name: "no name", edit: func(c *pluginclient.LaunchConfig) { c.Name = "" }, wantMsg: []string{"Name is empty"}},
		{name: "missing binary", edit: func(c *pluginclient.LaunchConfig) { c.Path = filepath.Join(t.TempDir(), "nope") }, wantIs: os.ErrNotExist},
		{name: "not a plugin", edit: func(c *pluginclient.LaunchConfig) { c.Path = "/bin/true"; c.SHA256 = "" }, wantMsg: []string{"starting plugin"}},
		{name: "configure fails", edit: func(c *pluginclient.LaunchConfig) { c.Config = []byte("fail") }, wantMsg: []string{"configuration rejected"}},
		{name: "max message size", edit: func(c *pluginclient.LaunchConfig) { c.MaxMessageSize = pluginsdk.MaxMessageSizeLimit + 1 }, wantMsg: []string{"MaxMessageSize"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := pluginclient.LaunchConfig{Name: "testplugin", Path: path, SHA256: sum, Logger: plugintest.TestLogger(t)}
			tt.edit(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := pluginclient.Launch(ctx, cfg)
			if tt.wantIs == nil && tt.wantMsg == nil {
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Stop(ctx); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				_ = c.Stop(ctx)
				t.Fatal("Launch succeeded")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want %v", err, tt.wantIs)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("err = %v, want it to mention %q", err, m)
				}
			}
		})
	}
}

// TestOnlyTheChannel checks that a plugin has no socket but its end of the
// call channel (inherited as descriptor 3, which the SDK's net.Conn holds
// as a copy): nothing on disk another process could connect to, and no
// certificate in its environment.
func TestOnlyTheChannel(t *testing.T) {
	c := launch(t, nil)
	if env := mustCall(t, c, "env", ""); strings.Contains(env, "PLUGIN_CLIENT_CERT") {
		t.Fatalf("the plugin was given an AutoMTLS certificate:\n%s", env)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	var sockets []string
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", c.Pid(), fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:") {
			sockets = append(sockets, fd.Name()+" -> "+target)
		}
	}
	if len(sockets) != 1 {
		t.Fatalf("plugin's sockets: %q, want the channel alone", sockets)
	}
}

func TestConcurrentCalls(t *testing.T) {
	c := launch(t, nil)
	const workers, each = 64, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				want := fmt.Sprintf("%d/%d/%s", w, i, strings.Repeat("x", i*w))
				got, err := call(context.Background(), c, "echo", want)
				if err != nil || got != want {
					errs <- fmt.Errorf("echo %q = %q, %v", want[:8], got[:min(8, len(got))], err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := c.InFlight(); n != 0 {
		t.Fatalf("InFlight = %d after all calls returned", n)
	}
}

func TestDeadlineAndCancel(t *testing.T) {
	c := launch(t, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	left, err := call(ctx, c, "deadline", "")
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := time.ParseDuration(left); err != nil || d <= time.Second || d > 2*time.Second {
		t.Fatalf("handler saw %q left of a 2s deadline", left)
	}
	if got, err := call(context.Background(), c, "deadline", ""); err != nil || got != "none" {
		t.Fatalf("no deadline: handler saw %q", got)
	}

	// Cancelling the caller's context returns at once and cancels the
	// handler in the plugin.
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := call(ctx, c, "sleep", "10m")
		done <- err
	}()
	poll.Until(t, "sleep running", 0, func() bool { return mustCall(t, c, "active", "") == "1" })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	if n := c.InFlight(); n != 0 {
		t.Fatalf("InFlight = %d after cancel", n)
	}
	poll.Until(t, "handler cancelled", 0, func() bool { return mustCall(t, c, "active", "") == "0" })

	// An expired deadline fails before anything is sent.
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := call(ctx, c, "echo", ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expired deadline: %v", err)
	}
}

// TestHandlerSeesWhyItEnded runs calls that outlive their caller, through a
// real plugin process: a passed deadline must reach the handler as
// context.DeadlineExceeded every time (the node sends no cancel that could
// race the handler's own timer), and a caller that gives up as
// context.Canceled.
func TestHandlerSeesWhyItEnded(t *testing.T) {
	c := launch(t, nil)
	ended := func() string {
		var got string
		poll.Until(t, "handler ended", 0, func() bool { got = mustCall(t, c, "ended", ""); return got != "" })
		return got
	}
	for i := range 12 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(5+i)*time.Millisecond)
		_, err := call(ctx, c, "sleep", "10m")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("run %d: caller got %v, want its deadline", i, err)
		}
		if got := ended(); got != context.DeadlineExceeded.Error() {
			t.Fatalf("run %d: handler's context ended with %q, want %q", i, got, context.DeadlineExceeded)
		}
	}
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		done := make(chan error, 1)
		go func() {
			_, err := call(ctx, c, "sleep", "10m")
			done <- err
		}()
		poll.Until(t, "sleep running", 0, func() bool { return mustCall(t, c, "active", "") == "1" })
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d: caller got %v, want canceled", i, err)
		}
		if got := ended(); got != context.Canceled.Error() {
			t.Fatalf("run %d: handler's context ended with %q, want %q", i, got, context.Canceled)
		}
	}
}

func TestSizesAndStatuses(t *testing.T) {
	const max = 1 << 20
	c := launch(t, func(cfg *pluginclient.LaunchConfig) { cfg.MaxMessageSize = max })
	tests := []struct {
		handle, args string
		wantIs       error
		wantLen      int
	}{
		{handle: "big", args: strconv.Itoa(max), wantLen: max},
		{handle: "big", args: strconv.Itoa(max + 1), wantIs: pluginsdk.ErrTooLarge},
		{handle: "echo", args: strings.Repeat("a", max+1), wantIs: pluginsdk.ErrTooLarge},
		{handle: "echo", args: strings.Repeat("a", max), wantLen: max},
		{handle: "nope", wantIs: pluginsdk.ErrNoSuchHandle},
		{handle: "\xff", wantIs: pluginsdk.ErrBadRequest},
		{handle: "sleep", args: "bad", wantIs: &pluginsdk.Error{}},
	}
	for _, tt := range tests {
		t.Run(tt.handle+"/"+tt.args[:min(len(tt.args), 10)], func(t *testing.T) {
			got, err := call(context.Background(), c, tt.handle, tt.args)
			switch want := tt.wantIs.(type) {
			case nil:
				if err != nil || len(got) != tt.wantLen {
					t.Fatalf("got %d bytes, %v; want %d", len(got), err, tt.wantLen)
				}
			case *pluginsdk.Error:
				if !errors.As(err, &want) || want.Status != rpc.StatusHandlerError || want.Message == "" {
					t.Fatalf("err = %v, want a handler_error with its message", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Fatalf("err = %v, want %v", err, want)
				}
			}
		})
	}
	// None of that broke the stream.
	if got := mustCall(t, c, "echo", "ok"); got != "ok" {
		t.Fatalf("echo after errors = %q", got)
	}
}

func TestSend(t *testing.T) {
	c := launch(t, nil)
	if err := c.Send(context.Background(), &pluginsdk.Request{Handle: "sleep", Args: []byte("300ms")}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "send running", 0, func() bool { return mustCall(t, c, "active", "") == "1" })
	if n := c.InFlight(); n != 0 {
		t.Fatalf("InFlight = %d; a send awaits no reply", n)
	}
	poll.Until(t, "send finished", 0, func() bool { return mustCall(t, c, "active", "") == "0" })
	if err := c.Send(context.Background(), &pluginsdk.Request{Handle: "nope"}); err != nil {
		t.Fatalf("send to unknown handle: %v (its outcome is only logged)", err)
	}
	if got := mustCall(t, c, "echo", "still serving"); got != "still serving" {
		t.Fatalf("echo after a send to no handle = %q", got)
	}
}

func TestHostCallbacks(t *testing.T) {
	peer := testPeer(t, 9)
	tests := []struct {
		err  error
		want string
	}{
		{nil, "nil"},
		{rpc.Errorf(rpc.StatusHandlerError, "boom"), "HandlerError:boom"},
		{fmt.Errorf("wrapped: %w", pluginsdk.ErrConnLost), "ErrConnLost"},
		{pluginsdk.ErrNotTrusted, "ErrNotTrusted"},
		{fmt.Errorf("wrapped: %w", pluginsdk.ErrNotConnected), "ErrNotConnected"},
		{pluginsdk.ErrNoSuchHandle, "ErrNoSuchHandle"},
		{pluginsdk.ErrForbidden, "ErrForbidden"},
		{pluginsdk.ErrHandlerCrashed, "ErrHandlerCrashed"},
		{pluginsdk.ErrOverloaded, "ErrOverloaded"},
		{pluginsdk.ErrTooLarge, "ErrTooLarge"},
		{pluginsdk.ErrUnavailable, "ErrUnavailable"},
		{pluginsdk.ErrBadRequest, "ErrBadRequest"},
		{context.DeadlineExceeded, "DeadlineExceeded"},
		{errors.New("disk on fire"), "HandlerError:disk on fire"},
	}
	host := &plugintest.Host{CallFunc: func(_ context.Context, p pluginsdk.PeerID, handle string, _ []byte) ([]byte, error) {
		if p != peer {
			return nil, fmt.Errorf("wrong peer %v", p)
		}
		i, _ := strconv.Atoi(handle)
		return nil, tests[i].err
	}}
	c := launch(t, func(cfg *pluginclient.LaunchConfig) { cfg.Host = host })
	for i, tt := range tests {
		out, err := c.Call(context.Background(), &pluginsdk.Request{Caller: peer, Handle: "hostcall", Args: []byte(strconv.Itoa(i))})
		if err != nil || string(out) != tt.want {
			t.Errorf("host error %v: plugin saw %q, %v; want %q", tt.err, out, err, tt.want)
		}
	}
	if n := len(host.Calls()); n != len(tests) {
		t.Fatalf("host recorded %d calls, want %d", n, len(tests))
	}
}

func TestCrash(t *testing.T) {
	c := launch(t, nil)
	child, _ := strconv.Atoi(mustCall(t, c, "spawn", ""))
	inflight := make(chan error, 1)
	go func() {
		_, err := call(context.Background(), c, "sleep", "10m")
		inflight <- err
	}()
	poll.Until(t, "sleep running", 0, func() bool { return c.InFlight() == 1 })

	start := time.Now()
	if _, err := call(context.Background(), c, "exit", ""); !errors.Is(err, pluginclient.ErrCrashed) {
		t.Fatalf("exit: %v, want ErrCrashed", err)
	}
	if err := <-inflight; !errors.Is(err, pluginclient.ErrCrashed) {
		t.Fatalf("in-flight call: %v, want ErrCrashed", err)
	}
	t.Logf("calls failed %v after the crash was requested", time.Since(start))
	<-c.Exited()
	if err := c.ExitErr(); err == nil || err.Error() != "exit status 7" {
		t.Fatalf("ExitErr = %v", err)
	}
	poll.Until(t, "orphan killed", 0, func() bool { return !alive(child) })
	if _, err := call(context.Background(), c, "echo", ""); !errors.Is(err, pluginclient.ErrCrashed) {
		t.Fatalf("call after crash: %v", err)
	}
}

func TestStop(t *testing.T) {
	t.Run("drains", func(t *testing.T) {
		c := launch(t, nil)
		child, _ := strconv.Atoi(mustCall(t, c, "spawn", ""))
		results := make(chan error, 3)
		for range 3 {
			go func() {
				_, err := call(context.Background(), c, "sleep", "200ms")
				results <- err
			}()
		}
		poll.Until(t, "calls in flight", 0, func() bool { return c.InFlight() == 3 })
		stopped := make(chan error, 1)
		go func() { stopped <- c.Stop(context.Background()) }()
		poll.Until(t, "stopping", 0, func() bool {
			_, err := call(context.Background(), c, "echo", "")
			return errors.Is(err, pluginclient.ErrStopping)
		})
		for range 3 {
			if err := <-results; err != nil {
				t.Errorf("in-flight call during Stop: %v", err)
			}
		}
		if err := <-stopped; err != nil {
			t.Fatalf("Stop: %v", err)
		}
		select {
		case <-c.Exited():
		default:
			t.Fatal("Exited not closed after Stop")
		}
		// A SIGKILL is delivered asynchronously: the group's processes die
		// very soon after Stop returns, not necessarily before.
		poll.Until(t, "plugin and its child gone", 0, func() bool { return !alive(c.Pid()) && !alive(child) })
		if err := c.Stop(context.Background()); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
	})
	t.Run("forced", func(t *testing.T) {
		c := launch(t, nil)
		blocked := make(chan error, 1)
		go func() {
			_, err := call(context.Background(), c, "block", "")
			blocked <- err
		}()
		poll.Until(t, "call in flight", 0, func() bool { return c.InFlight() == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := c.Stop(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop = %v, want deadline exceeded", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("forced Stop took %v", d)
		}
		if err := <-blocked; !errors.Is(err, pluginclient.ErrClosed) {
			t.Fatalf("abandoned call: %v, want ErrClosed", err)
		}
		poll.Until(t, "plugin gone", 0, func() bool { return !alive(c.Pid()) })
	})
}

// TestOutput checks that the plugin's logs and prints reach the host's
// logger tagged with its name.
func TestOutput(t *testing.T) {
	var buf peernettest.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	c := launch(t, func(cfg *pluginclient.LaunchConfig) { cfg.Name = "chatty"; cfg.Logger = log })
	mustCall(t, c, "print", "hello from stdout")
	mustCall(t, c, "log", "hello from hclog")
	// The plugin's own fields come in no particular order.
	for _, want := range [][]string{
		{"[INFO]  chatty: hello from stdout: stream=stdout"},
		{"[WARN]  chatty: hello from hclog:", "@module=testplugin", "from=testplugin"},
	} {
		poll.Until(t, "log line "+strings.Join(want, " "), 0, func() bool {
			for _, line := range strings.Split(buf.String(), "\n") {
				if containsAll(line, want) {
					return true
				}
			}
			return false
		})
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestPdeathsig kills a host process with SIGKILL and checks its plugin dies
// with it, even though the host ended threads after launching it.
func TestPdeathsig(t *testing.T) {
	path, _ := plugintest.Build(t, testPlugin)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), hostModeEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("host: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || !alive(pid) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("host reported %q", line)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	poll.Until(t, "plugin killed with its host", 0, func() bool { return !alive(pid) })
}

// runHost is the host process of TestPdeathsig: it launches the plugin, ends
// a few dozen OS threads (a goroutine that exits while locked to its thread
// takes the thread with it), checks the plugin still answers, prints its pid
// and waits to be killed.
func runHost(path string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pluginclient.Launch(ctx, pluginclient.LaunchConfig{Name: "testplugin", Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for range 50 {
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(done)
		}()
		<-done
	}
	if _, err := call(ctx, c, "echo", ""); err != nil {
		fmt.Fprintln(os.Stderr, "plugin died with a host thread:", err)
		return 1
	}
	fmt.Println(c.Pid())
	select {}
}

// TestStopWithEscapedChild: a process the plugin started in a session of
// its own (out of reach of the group kill) keeps the plugin's stdout and
// stderr open. Stop must still return, the plugin gone, instead of waiting
// for the end of output that never comes.
func TestStopWithEscapedChild(t *testing.T) {
	c := launch(t, nil)
	child, err := strconv.Atoi(mustCall(t, c, "escape", ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- c.Stop(ctx)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Stop hangs while an escaped child holds the plugin's output")
	}
	if alive(c.Pid()) {
		t.Fatal("plugin still alive after Stop")
	}
}
