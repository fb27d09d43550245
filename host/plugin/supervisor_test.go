package plugin_test

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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/host/plugin"
	"github.com/peernet/peernet/pluginsdk/pluginclient"
	"github.com/peernet/peernet/testing/peernettest"
	"github.com/peernet/peernet/trust"
)

// TestCrashMidCall crashes a plugin while a call from another node is in
// flight: the caller gets "handler crashed" within a second, another
// plugin keeps serving a third node throughout, and the crashed plugin is
// back, as a new generation, after the backoff. A handler's panic is not a
// crash: the process keeps serving.
func TestCrashMidCall(t *testing.T) {
	echo := build(t, echoPkg)
	tests := []struct {
		name  string
		sleep string // the call in flight
		// crash crashes the plugin (pid) from node c, and returns the
		// error of the crashing call if it made one.
		crash       func(t *testing.T, c, a *host.Node, pid int) error
		byCall      bool // crash makes a call, which must fail as crashed
		processDies bool
	}{
		{
			name:   "handler panic",
			sleep:  "1s",
			byCall: true,
			crash: func(t *testing.T, c, a *host.Node, _ int) error {
				_, err := call(c, a, "crash", "panic")
				return err
			},
		},
		{
			name:   "os.Exit",
			sleep:  "1m",
			byCall: true,
			crash: func(t *testing.T, c, a *host.Node, _ int) error {
				_, err := call(c, a, "crash", "exit")
				return err
			},
			processDies: true,
		},
		{
			name:  "kill -9",
			sleep: "1m",
			crash: func(t *testing.T, _, _ *host.Node, pid int) error {
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			processDies: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := peernettest.Nodes(t, 3, host.Config{})
			a, b, c := nodes[0], nodes[1], nodes[2]
			s := supervisor(t, a)
			mustApply(t, s,
				config("victim", echo, "echo", "sleep", "crash"),
				config("bystander", echo, "whoami"),
			)
			before := waitStatus(t, s, "victim", "runs", running)
			bystander, _ := status(s, "bystander")

			// c calls the other plugin throughout.
			want := c.Identity().String()
			l := startLoad(t, 1, c, a, "whoami", func(int) string { return "" }, func(res, _ string, _ int) error {
				if res != want {
					return fmt.Errorf("whoami = %q, want %q", res, want)
				}
				return nil
			})
			base := l.waitCalls(t, 0, 10)

			type outcome struct {
				res string
				err error
				at  time.Time
				st  plugin.Status // the victim's, as the call returned
			}
			inFlight := make(chan outcome, 1)
			go func() {
				res, err := call(b, a, "sleep", tt.sleep)
				at := time.Now()
				st, _ := status(s, "victim")
				inFlight <- outcome{res, err, at, st}
			}()
			waitStatus(t, s, "victim", "has the call in flight", func(st plugin.Status) bool { return st.InFlight > 0 })

			crashedAt := time.Now()
			crashErr := tt.crash(t, c, a, before.Pid)
			if tt.byCall && !errors.Is(crashErr, host.ErrHandlerCrashed) {
				t.Errorf("crashing call: %v, want %v", crashErr, host.ErrHandlerCrashed)
			}

			var got outcome
			select {
			case got = <-inFlight:
			case <-time.After(peernettest.Timeout):
				t.Fatal("the call in flight never returned")
			}
			if !tt.processDies {
				if got.err != nil || got.res != tt.sleep {
					t.Fatalf("call in flight during a panic = %q, %v; want it served", got.res, got.err)
				}
				after, _ := status(s, "victim")
				if after.Pid != before.Pid || after.Generation != before.Generation || after.Restarts != 0 || after.State != plugin.StateRunning {
					t.Fatalf("after a panic: %+v, want the same process (%+v)", after, before)
				}
			} else {
				took := got.at.Sub(crashedAt)
				t.Logf("the caller on another node got %q %v after the crash", got.err, took)
				if !errors.Is(got.err, host.ErrHandlerCrashed) {
					t.Fatalf("call in flight = %q, %v; want %v", got.res, got.err, host.ErrHandlerCrashed)
				}
				// It failed at once: before the plugin came back, which
				// takes a backoff and a whole launch after the crash.
				if got.st.State == plugin.StateRunning && got.st.Generation > before.Generation {
					t.Fatalf("the call in flight failed only after generation %d was serving (%v after the crash), want before any restart", got.st.Generation, took)
				}
				back := waitStatus(t, s, "victim", "is back", func(st plugin.Status) bool {
					return running(st) && st.Generation == before.Generation+1
				})
				t.Logf("back as generation %d (pid %d) %v after the crash", back.Generation, back.Pid, time.Since(crashedAt))
				if back.Restarts != before.Restarts+1 || back.Pid == before.Pid || back.LastError == "" {
					t.Fatalf("after the restart: %+v, want Restarts %d, a new pid and the crash as LastError", back, before.Restarts+1)
				}
				waitReaped(t, before.Pid, "the crashed generation")
			}
			if res := mustCall(t, b, a, "echo", "still here"); res != "still here" {
				t.Fatalf("echo = %q", res)
			}

			l.waitCalls(t, base, 10) // served after the crash too
			l.end()
			ok, fails := l.counts()
			if len(fails) > 0 {
				t.Fatalf("the other plugin failed %d of %d calls meanwhile: %v", len(fails), ok+len(fails), fails[0])
			}
			if st, _ := status(s, "bystander"); st.Pid != bystander.Pid || st.Generation != bystander.Generation {
				t.Fatalf("the other plugin changed: %+v, was %+v", st, bystander)
			}
			t.Logf("the other plugin served %d calls from a third node throughout", ok)
		})
	}
}

// TestCrashLoop runs a plugin that always dies: after more than MaxCrashes
// crashes in the window it is failed, its handles answer "unavailable" at
// once and nothing relaunches it, until the same configuration is applied
// again.
func TestCrashLoop(t *testing.T) {
	tp := build(t, testPkg)
	tests := []struct {
		name       string
		die        string
		applyFails bool // the first launch itself fails
	}{
		{name: "dies at start", die: "start", applyFails: true},
		{name: "dies after starting", die: "file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := peernettest.Nodes(t, 2, host.Config{})
			a, b := nodes[0], nodes[1]
			s := supervisor(t, a)
			dir := t.TempDir()
			starts, dieFile := filepath.Join(dir, "starts"), filepath.Join(dir, "die")
			die := tt.die
			if die == "file" {
				// The plugin dies once this file exists: after the test
				// has seen it serve, however slowly it started.
				die = "file:" + dieFile
			}
			cfg := config("looper", tp, "echo")
			cfg.Env = []string{"TESTPLUGIN_DIE=" + die, "TESTPLUGIN_STARTS=" + starts}
			cfg.Restart = plugin.RestartPolicy{MaxCrashes: 2, Window: time.Minute, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
			launches := func() int {
				data, _ := os.ReadFile(starts)
				return strings.Count(string(data), "\n")
			}

			for round := 1; round <= 2; round++ {
				begun := time.Now()
				os.Remove(dieFile)
				err := apply(s, cfg)
				if tt.applyFails != (err != nil) {
					t.Fatalf("round %d: Apply: %v, want an error: %v", round, err, tt.applyFails)
				}
				if !tt.applyFails {
					// Applied, the plugin runs until it is told to die.
					if st, _ := status(s, "looper"); !running(st) {
						t.Fatalf("round %d: applied: %+v, want it running", round, st)
					}
					if res := mustCall(t, b, a, "echo", "again"); res != "again" {
						t.Fatalf("echo = %q", res)
					}
					if err := os.WriteFile(dieFile, nil, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				st := waitStatus(t, s, "looper", "has failed", func(st plugin.Status) bool { return st.State == plugin.StateFailed })
				t.Logf("round %d: failed after %v: %s", round, time.Since(begun), st.LastError)
				if got, want := launches(), round*(cfg.Restart.MaxCrashes+1); got != want {
					t.Fatalf("round %d: %d launches, want %d", round, got, want)
				}
				if st.Pid != 0 || !slices.Equal(st.Handles, []string{"echo"}) || st.LastError == "" {
					t.Fatalf("failed status: %+v", st)
				}

				// A failed plugin answers at once: no launch, no wait for
				// one (the launch count below stays).
				var slowest time.Duration
				for range 5 {
					start := time.Now()
					_, err := call(b, a, "echo", "x")
					took := time.Since(start)
					slowest = max(slowest, took)
					if !errors.Is(err, host.ErrUnavailable) {
						t.Fatalf("call to a failed plugin: %v, want %v", err, host.ErrUnavailable)
					}
				}
				t.Logf("round %d: a failed plugin answers unavailable in at most %v", round, slowest)
				if got, want := launches(), round*(cfg.Restart.MaxCrashes+1); got != want {
					t.Fatalf("round %d: a failed plugin was relaunched: %d launches, want %d", round, got, want)
				}
			}
		})
	}
}

// TestSwapUnderLoad swaps a plugin's binary while another node calls it
// in a loop: no call fails, no connection drops, calls in flight finish on
// the old generation, which then exits. A swap whose new generation cannot
// serve leaves the old one serving.
func TestSwapUnderLoad(t *testing.T) {
	v1, v2 := build(t, testPkg), testpluginVersion(t, "2")
	echo := build(t, echoPkg)
	nodes := peernettest.Nodes(t, 2, host.Config{})
	a, b := nodes[0], nodes[1]
	downs := watchDowns(t, a, b)
	s := supervisor(t, a)
	cfg1 := config("tp", v1, "version", "sleep")
	cfg1.GracePeriod = 5 * time.Second
	mustApply(t, s, cfg1)
	first := waitStatus(t, s, "tp", "runs", running)
	if first.Version != "1" || first.Generation != 1 {
		t.Fatalf("first generation: %+v", first)
	}

	// A slow call is in flight on the first generation when it is
	// swapped out: it must finish there.
	slow := make(chan error, 1)
	go func() {
		res, err := call(b, a, "sleep", "1500ms")
		if err == nil && res != "1500ms" {
			err = fmt.Errorf("sleep = %q", res)
		}
		slow <- err
	}()
	waitStatus(t, s, "tp", "has the slow call in flight", func(st plugin.Status) bool { return st.InFlight > 0 })

	// Each worker calls in sequence: once it has seen version 2, it must
	// never see version 1 again.
	l := startLoad(t, 4, b, a, "version", func(int) string { return "" }, func(res, prev string, _ int) error {
		if res != "1" && res != "2" || prev == "2" && res == "1" {
			return fmt.Errorf("version %q after %q", res, prev)
		}
		return nil
	})
	before := l.waitCalls(t, 0, 50)

	cfg2 := config("tp", v2, "version", "sleep")
	cfg2.GracePeriod = cfg1.GracePeriod
	swapped := time.Now()
	mustApply(t, s, cfg2)
	second, _ := status(s, "tp")
	if !running(second) || second.Generation != 2 || second.Version != "2" || second.SHA256 != v2.sha || second.Restarts != 0 {
		t.Fatalf("after the swap: %+v, want generation 2 of version 2 running", second)
	}
	select {
	case err := <-slow:
		t.Fatalf("the slow call ended (%v) before the swap was done; the test proves nothing", err)
	default:
	}
	if reaped(first.Pid) {
		t.Fatal("the old generation exited with a call in flight")
	}
	if err := <-slow; err != nil {
		t.Fatalf("call in flight during the swap: %v", err)
	}
	waitReaped(t, first.Pid, "the old generation")
	gone := time.Since(swapped)
	t.Logf("the old generation exited %v after the swap began, once its call in flight was done (grace period %v)", gone, cfg1.GracePeriod)
	if gone > cfg1.GracePeriod {
		t.Fatalf("the old generation took %v to exit, longer than its grace period", gone)
	}
	after := l.waitCalls(t, before, 50)

	failedSwaps := []struct {
		name string
		cfg  plugin.Config
		want error
	}{
		{name: "bad checksum", cfg: func() plugin.Config {
			c := config("tp", v1, "version", "sleep")
			c.SHA256 = strings.Repeat("ab", 32)
			return c
		}(), want: pluginclient.ErrChecksum},
		{name: "binary lacking a handle", cfg: config("tp", echo, "version", "sleep"), want: plugin.ErrMissingHandle},
	}
	for _, fs := range failedSwaps {
		t.Run(fs.name, func(t *testing.T) {
			err := apply(s, fs.cfg)
			if !errors.Is(err, fs.want) {
				t.Fatalf("Apply: %v, want %v", err, fs.want)
			}
			st, _ := status(s, "tp")
			if !running(st) || st.Pid != second.Pid || st.Generation != 2 || st.Version != "2" || st.SHA256 != v2.sha {
				t.Fatalf("after a failed swap: %+v, want generation 2 still serving", st)
			}
			after = l.waitCalls(t, after, 20)
		})
	}

	l.end()
	ok, fails := l.counts()
	t.Logf("calls during the swaps: %d ok (%d answered by version 1, %d by version 2), %d failed", ok, l.seen["1"], l.seen["2"], len(fails))
	if len(fails) > 0 {
		t.Fatalf("%d calls failed, first: %v", len(fails), fails[0])
	}
	if l.seen["1"] == 0 || l.seen["2"] == 0 {
		t.Fatalf("calls by version: %v, want both versions", l.seen)
	}
	downs.check(t)
	if !b.Connected(a.Identity()) || !a.Connected(b.Identity()) {
		t.Fatal("the nodes are no longer connected")
	}
}

// revokeStep is one step of TestRevoke: after do, the revoked handles
// answer "no such handle" and the serving ones still serve.
type revokeStep struct {
	do      func(s *plugin.Supervisor) error
	revoked []string
	serving []string
	gone    bool // the process is gone
	listed  bool // the plugin is then listed as revoked, not forgotten
}

// TestRevoke revokes a plugin's handles and removes plugins: a revoked
// handle answers "no such handle" at once; once a plugin has no handle
// left, its process is gone, and it is listed as revoked until an Apply
// without it forgets it.
func TestRevoke(t *testing.T) {
	echo := build(t, echoPkg)
	tests := []struct {
		name  string
		steps []revokeStep
	}{
		{
			name: "handle by handle",
			steps: []revokeStep{
				{do: func(s *plugin.Supervisor) error { return s.RevokeHandle("p", "echo") }, revoked: []string{"echo"}, serving: []string{"whoami"}},
				{do: func(s *plugin.Supervisor) error { return s.RevokeHandle("p", "whoami") }, revoked: []string{"echo", "whoami"}, gone: true, listed: true},
			},
		},
		{
			name: "remove",
			steps: []revokeStep{
				{do: func(s *plugin.Supervisor) error { return s.Remove("p") }, revoked: []string{"echo", "whoami"}, gone: true, listed: true},
				{do: func(s *plugin.Supervisor) error { return s.Remove("p") }, revoked: []string{"echo", "whoami"}, gone: true, listed: true},
				{do: func(s *plugin.Supervisor) error { return apply(s) }, revoked: []string{"echo", "whoami"}, gone: true},
			},
		},
		{
			name: "apply without it",
			steps: []revokeStep{
				{do: func(s *plugin.Supervisor) error { return apply(s) }, revoked: []string{"echo", "whoami"}, gone: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := peernettest.Nodes(t, 2, host.Config{})
			a, b := nodes[0], nodes[1]
			s := supervisor(t, a)
			mustApply(t, s, config("p", echo, "echo", "whoami"))
			pid := waitStatus(t, s, "p", "runs", running).Pid
			for i, step := range tt.steps {
				if err := step.do(s); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				for _, h := range step.revoked {
					if _, err := call(b, a, h, ""); !errors.Is(err, host.ErrNoSuchHandle) {
						t.Fatalf("step %d: calling revoked %s: %v, want %v", i, h, err, host.ErrNoSuchHandle)
					}
				}
				for _, h := range step.serving {
					mustCall(t, b, a, h, "")
				}
				if step.gone {
					t.Logf("process gone %v after the last handle was revoked", waitReaped(t, pid, "the plugin"))
					st, ok := status(s, "p")
					if ok != step.listed || ok && (st.State != plugin.StateRevoked || st.Pid != 0 || len(st.Handles) != 0) {
						t.Fatalf("step %d: the supervisor lists the plugin: %v, as %+v; want listed as revoked: %v", i, ok, st, step.listed)
					}
				} else if reaped(pid) {
					t.Fatalf("step %d: the process exited while a handle is exposed", i)
				}
			}
		})
	}
}

// TestRevokeErrors checks the errors of Remove and RevokeHandle.
func TestRevokeErrors(t *testing.T) {
	echo := build(t, echoPkg)
	a := peernettest.Node(t, host.Config{})
	s := supervisor(t, a)
	mustApply(t, s, config("p", echo, "echo"))
	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"remove unknown plugin", func() error { return s.Remove("nope") }, plugin.ErrNoSuchPlugin},
		{"revoke handle of unknown plugin", func() error { return s.RevokeHandle("nope", "echo") }, plugin.ErrNoSuchPlugin},
		{"revoke handle not exposed", func() error { return s.RevokeHandle("p", "whoami") }, host.ErrNoSuchHandle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if st, _ := status(s, "p"); !running(st) {
		t.Fatalf("the plugin suffered: %+v", st)
	}
}

// TestChecksumMismatch applies a plugin whose binary does not match its
// configured SHA-256: Apply fails naming both digests and nothing is
// exposed, until a configuration with the right digest is applied.
func TestChecksumMismatch(t *testing.T) {
	echo := build(t, echoPkg)
	nodes := peernettest.Nodes(t, 2, host.Config{})
	a, b := nodes[0], nodes[1]
	s := supervisor(t, a)
	cfg := config("p", echo, "echo")
	cfg.SHA256 = strings.Repeat("0f", 32)

	err := apply(s, cfg)
	if !errors.Is(err, pluginclient.ErrChecksum) {
		t.Fatalf("Apply: %v, want %v", err, pluginclient.ErrChecksum)
	}
	if !strings.Contains(err.Error(), echo.sha) || !strings.Contains(err.Error(), cfg.SHA256) {
		t.Fatalf("Apply: %q does not name both the binary's digest %s and the configured one %s", err, echo.sha, cfg.SHA256)
	}
	if slices.Contains(a.Handles(), "echo") {
		t.Fatal("echo is exposed")
	}
	if _, err := call(b, a, "echo", ""); !errors.Is(err, host.ErrNoSuchHandle) {
		t.Fatalf("call: %v, want %v", err, host.ErrNoSuchHandle)
	}
	st, ok := status(s, "p")
	if !ok || st.State != plugin.StateFailed || st.Pid != 0 || st.Generation != 0 || len(st.Handles) != 0 {
		t.Fatalf("status: %+v, want failed with nothing exposed", st)
	}

	cfg.SHA256 = echo.sha
	mustApply(t, s, cfg)
	if res := mustCall(t, b, a, "echo", "fixed"); res != "fixed" {
		t.Fatalf("echo = %q", res)
	}
}

// TestHostKilled kills a host process with SIGKILL: its plugin process
// does not outlive it.
func TestHostKilled(t *testing.T) {
	echo := build(t, echoPkg)
	b := peernettest.Node(t, host.Config{})
	c := startChild(t, b, childSpec{DataDir: t.TempDir(), Plugins: []plugin.Config{config("echo", echo, "echo")}})
	if res, err := c.call(b, "echo", "hi"); err != nil || res != "hi" {
		t.Fatalf("echo through the child = %q, %v", res, err)
	}
	pid := c.status(t, b, "echo").Pid
	if processGone(pid) {
		t.Fatalf("plugin pid %d is not running", pid)
	}
	killed := time.Now()
	c.kill(t)
	waitGone(t, pid, "the plugin of the killed host")
	t.Logf("plugin process gone %v after SIGKILL of its host", time.Since(killed))
}

// TestKVSurvivesKills writes to the kv plugin through a node and kills the
// plugin, then its host, with SIGKILL: every acknowledged write is still
// there afterwards.
func TestKVSurvivesKills(t *testing.T) {
	kv := build(t, kvPkg)
	b := peernettest.Node(t, host.Config{})
	dataDir, kvDir := t.TempDir(), t.TempDir()
	kvConfig := func() plugin.Config {
		c := config("kv", kv, "kv.put", "kv.get")
		c.PluginConfig, _ = json.Marshal(map[string]string{"dir": kvDir})
		return c
	}
	spec := childSpec{DataDir: dataDir, Plugins: []plugin.Config{kvConfig()}}
	put := func(c *child, key, value string) {
		t.Helper()
		args, _ := json.Marshal(map[string]string{"key": key, "value": value})
		if res, err := c.call(b, "kv.put", string(args)); err != nil || res != "{}" {
			t.Fatalf("kv.put %s = %q, %v", key, res, err)
		}
	}
	get := func(c *child, key, want string) {
		t.Helper()
		args, _ := json.Marshal(map[string]string{"key": key})
		res, err := c.call(b, "kv.get", string(args))
		if err != nil {
			t.Fatalf("kv.get %s: %v", key, err)
		}
		var got struct {
			Found bool   `json:"found"`
			Value string `json:"value"`
		}
		if err := json.Unmarshal([]byte(res), &got); err != nil || !got.Found || got.Value != want {
			t.Fatalf("kv.get %s = %s, want %q", key, res, want)
		}
	}

	c := startChild(t, b, spec)
	put(c, "before-plugin-kill", "1")
	first := c.status(t, b, "kv")
	if err := syscall.Kill(first.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.waitStatus(t, b, "kv", "is back", func(st plugin.Status) bool {
		return running(st) && st.Generation == first.Generation+1
	})
	get(c, "before-plugin-kill", "1")
	put(c, "before-host-kill", "2")
	pid := c.status(t, b, "kv").Pid
	c.kill(t)
	waitGone(t, pid, "the kv plugin of the killed host")

	c = startChild(t, b, spec)
	get(c, "before-plugin-kill", "1")
	get(c, "before-host-kill", "2")
}

// TestCallbacks has a plugin call another peer through its node: the call
// arrives from the node's own PeerID, and the peer's errors come back.
func TestCallbacks(t *testing.T) {
	echo := build(t, echoPkg)
	nodes := peernettest.Nodes(t, 3, host.Config{})
	a, b, c := nodes[0], nodes[1], nodes[2]
	s := supervisor(t, a)
	mustApply(t, s, config("echo", echo, "call", "peers"))
	err := b.Expose("caller", host.HandlerFunc(func(_ context.Context, req *host.Request) ([]byte, error) {
		return []byte(req.Caller.String() + " " + string(req.Args)), nil
	}), host.ExposeOptions{})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		handle  string
		want    string
		wantErr error
	}{
		{name: "reaches the peer as the node", handle: "caller", want: a.Identity().String() + " hello"},
		{name: "peer error comes back", handle: "nosuch", wantErr: host.ErrHandlerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, _ := json.Marshal(map[string]string{"peer": b.Identity().String(), "handle": tt.handle, "args": "hello"})
			res, err := call(c, a, "call", string(args))
			if tt.wantErr != nil {
				var re *host.RemoteError
				if !errors.Is(err, tt.wantErr) || !errors.As(err, &re) || !strings.Contains(re.Message, "no_such_handle") {
					t.Fatalf("call = %q, %v; want %v naming the peer's error", res, err, tt.wantErr)
				}
				return
			}
			if err != nil || res != tt.want {
				t.Fatalf("call = %q, %v; want %q", res, err, tt.want)
			}
		})
	}

	res := mustCall(t, c, a, "peers", "")
	var peers []struct {
		ID        string `json:"id"`
		Connected bool   `json:"connected"`
	}
	if err := json.Unmarshal([]byte(res), &peers); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range peers {
		if p.Connected {
			ids = append(ids, p.ID)
		}
	}
	slices.Sort(ids)
	want := []string{b.Identity().String(), c.Identity().String()}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("peers = %s, want %v connected", res, want)
	}
}

// TestCallerIdentity checks that the plugin sees each caller's verified
// PeerID.
func TestCallerIdentity(t *testing.T) {
	echo := build(t, echoPkg)
	nodes := peernettest.Nodes(t, 3, host.Config{})
	a := nodes[0]
	s := supervisor(t, a)
	mustApply(t, s, config("echo", echo, "whoami"))
	for i, caller := range nodes[1:] {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if got, want := mustCall(t, caller, a, "whoami", ""), caller.Identity().String(); got != want {
				t.Fatalf("whoami = %q, want %q", got, want)
			}
		})
	}
}

// TestClose stops every plugin process and refuses later Applies.
func TestClose(t *testing.T) {
	echo := build(t, echoPkg)
	a := peernettest.Node(t, host.Config{})
	s := supervisor(t, a)
	mustApply(t, s, config("one", echo, "echo"), config("two", echo, "whoami"))
	var pids []int
	for _, st := range s.Status() {
		pids = append(pids, st.Pid)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if !reaped(pid) {
			t.Fatalf("plugin pid %d outlived Close", pid)
		}
	}
	if len(a.Handles()) != 0 {
		t.Fatalf("handles still exposed: %v", a.Handles())
	}
	if err := apply(s, config("one", echo, "echo")); !errors.Is(err, host.ErrClosed) {
		t.Fatalf("Apply after Close: %v, want %v", err, host.ErrClosed)
	}
}

// TestApplyChanges applies a series of configurations to one supervisor:
// handles move between plugins, options change without a restart, a
// handle the running binary lacks is refused, plugins leave.
func TestApplyChanges(t *testing.T) {
	echo := build(t, echoPkg)
	nodes := peernettest.Nodes(t, 3, host.Config{})
	a, b, c := nodes[0], nodes[1], nodes[2]
	s := supervisor(t, a)
	withAllow := func(cfg plugin.Config, allow ...*host.Node) plugin.Config {
		var ids []trust.PeerID
		for _, n := range allow {
			ids = append(ids, n.Identity())
		}
		for i := range cfg.Handles {
			cfg.Handles[i].Allow = host.AllowOnly(ids...)
		}
		return cfg
	}
	steps := []struct {
		name    string
		cfgs    []plugin.Config
		wantErr error
		calls   map[string]error // handle -> what b gets (nil: served)
		same    []string         // plugins whose process must not have changed
		gone    []string         // plugins whose process must have exited
	}{
		{
			name:  "one plugin, two handles",
			cfgs:  []plugin.Config{config("p2", echo, "echo", "whoami")},
			calls: map[string]error{"echo": nil, "whoami": nil},
		},
		{
			name:  "a handle moves to a plugin applied first",
			cfgs:  []plugin.Config{config("p1", echo, "whoami"), config("p2", echo, "echo")},
			calls: map[string]error{"echo": nil, "whoami": nil},
			same:  []string{"p2"},
		},
		{
			name:    "a handle the binary does not serve",
			cfgs:    []plugin.Config{config("p1", echo, "whoami"), config("p2", echo, "echo", "nosuch")},
			wantErr: plugin.ErrMissingHandle,
			calls:   map[string]error{"echo": nil, "whoami": nil, "nosuch": host.ErrNoSuchHandle},
			same:    []string{"p1", "p2"},
		},
		{
			name:  "an allow list without restart",
			cfgs:  []plugin.Config{withAllow(config("p1", echo, "whoami"), c), config("p2", echo, "echo")},
			calls: map[string]error{"echo": nil, "whoami": host.ErrForbidden},
			same:  []string{"p1", "p2"},
		},
		{
			name:  "a plugin leaves",
			cfgs:  []plugin.Config{config("p2", echo, "echo")},
			calls: map[string]error{"echo": nil, "whoami": host.ErrNoSuchHandle},
			same:  []string{"p2"},
			gone:  []string{"p1"},
		},
	}
	pids := map[string]int{}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			err := apply(s, step.cfgs...)
			if step.wantErr == nil && err != nil || !errors.Is(err, step.wantErr) {
				t.Fatalf("Apply: %v, want %v", err, step.wantErr)
			}
			for h, want := range step.calls {
				if _, err := call(b, a, h, ""); !errors.Is(err, want) || want == nil && err != nil {
					t.Errorf("calling %s: %v, want %v", h, err, want)
				}
			}
			for _, name := range step.same {
				if st, _ := status(s, name); st.Pid != pids[name] || !running(st) {
					t.Errorf("%s: %+v, want still pid %d", name, st, pids[name])
				}
			}
			for _, name := range step.gone {
				if !reaped(pids[name]) {
					t.Errorf("%s (pid %d) still runs", name, pids[name])
				}
				delete(pids, name)
			}
			for _, st := range s.Status() {
				pids[st.Name] = st.Pid
			}
		})
	}
}

// TestCloseDuringLaunch closes the supervisor while Apply is launching a
// slow plugin: Apply fails, and the process it started does not survive.
func TestCloseDuringLaunch(t *testing.T) {
	tp := build(t, testPkg)
	a := peernettest.Node(t, host.Config{})
	s := supervisor(t, a)
	starts := filepath.Join(t.TempDir(), "starts")
	cfg := config("slow", tp, "echo")
	cfg.Env = []string{"TESTPLUGIN_DELAY=1s", "TESTPLUGIN_STARTS=" + starts}
	applied := make(chan error, 1)
	go func() { applied <- apply(s, cfg) }()
	var pid int
	peernettest.Eventually(t, "the plugin process has started", func() bool {
		data, _ := os.ReadFile(starts)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		return pid != 0
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !reaped(pid) {
		t.Fatalf("plugin pid %d outlived Close", pid)
	}
	if err := <-applied; !errors.Is(err, host.ErrClosed) {
		t.Fatalf("Apply during Close: %v, want %v", err, host.ErrClosed)
	}
	if len(a.Handles()) != 0 {
		t.Fatalf("handles exposed after Close: %v", a.Handles())
	}
}

// TestRestartRunsPinnedBinary patches a running plugin's binary in place
// (same inode, as an attacker with write access to the file would) and
// kills the process: the restart runs the content Apply pinned, not the
// file. A second plugin configured with the original digest shares that
// sealed copy; applying the file's new digest runs the patched content.
func TestRestartRunsPinnedBinary(t *testing.T) {
	const original, patched = "pin-original-0001", "pin-PATCHED!-0001"
	built := testpluginVersion(t, original)
	data, err := os.ReadFile(built.path)
	if err != nil {
		t.Fatal(err)
	}
	bin := binary{filepath.Join(t.TempDir(), "testplugin"), built.sha}
	if err := os.WriteFile(bin.path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	nodes := peernettest.Nodes(t, 2, host.Config{})
	a, b := nodes[0], nodes[1]
	s := supervisor(t, a)
	cfgP := config("p", bin, "version")
	mustApply(t, s, cfgP)
	first := waitStatus(t, s, "p", "runs", running)
	if first.Version != original {
		t.Fatalf("p reports version %q, want %q", first.Version, original)
	}
	fileInfo, err := os.Stat(bin.path)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(exeOf(t, first.Pid), fileInfo) {
		t.Fatal("p executes its binary's file, not a pinned copy")
	}

	// Patch the binary in place: the running plugin does not execute the
	// file, so it opens for writing.
	f, err := os.OpenFile(bin.path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; ; {
		i := bytes.Index(data[off:], []byte(original))
		if i < 0 {
			break
		}
		off += i
		copy(data[off:], patched)
		if _, err := f.WriteAt([]byte(patched), int64(off)); err != nil {
			t.Fatal(err)
		}
		off += len(original)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	patchedSHA := hex.EncodeToString(sum[:])
	if after, err := os.Stat(bin.path); err != nil || !os.SameFile(fileInfo, after) || patchedSHA == bin.sha {
		t.Fatalf("the binary was not patched in place: %v", err)
	}

	if err := syscall.Kill(first.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, s, "p", "restarted", func(st plugin.Status) bool { return running(st) && st.Generation > first.Generation })
	if st.Version != original || st.Restarts != 1 {
		t.Fatalf("after the restart: %+v, want version %q and one restart", st, original)
	}
	if v := mustCall(t, b, a, "version", ""); v != original {
		t.Fatalf("version = %q, want %q", v, original)
	}

	// The original digest names content the supervisor holds: a plugin
	// configured with it runs that same sealed copy, whatever the file
	// now holds.
	cfgQ := config("q", bin, "echo")
	mustApply(t, s, cfgP, cfgQ)
	q := waitStatus(t, s, "q", "runs", running)
	if q.Version != original || !os.SameFile(exeOf(t, q.Pid), exeOf(t, st.Pid)) {
		t.Fatalf("q runs version %q, from its own copy: %v; want %q from p's", q.Version, !os.SameFile(exeOf(t, q.Pid), exeOf(t, st.Pid)), original)
	}

	// Applying the file's new digest is what runs the new content.
	cfgP.SHA256 = patchedSHA
	mustApply(t, s, cfgP, cfgQ)
	st = waitStatus(t, s, "p", "runs the patched binary", func(st plugin.Status) bool { return running(st) && st.Version == patched })
	if v := mustCall(t, b, a, "version", ""); v != patched {
		t.Fatalf("version = %q, want %q", v, patched)
	}
	if os.SameFile(exeOf(t, st.Pid), exeOf(t, q.Pid)) {
		t.Fatal("the patched binary runs from q's sealed copy")
	}
	if st, _ := status(s, "q"); st.Pid != q.Pid {
		t.Fatalf("q was restarted: %+v", st)
	}
}

// exeOf returns what process pid executes.
func exeOf(t *testing.T, pid int) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	return fi
}
