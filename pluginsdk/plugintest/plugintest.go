// Package plugintest implements a test kit for PeerNet plugins: it runs a
// plugin in-process or as a real process behind the same host-side driver
// (package pluginclient) the node uses, and fakes the node's Host callbacks.
//
//	func TestEcho(t *testing.T) {
//		p := plugintest.Start(t, newConfig(), plugintest.Options{})
//		out, err := p.Call(ctx, caller, "echo", []byte("hi"))
//		…
//	}
//
// Start is fast and lets the race detector see the handlers; StartProcess
// (with Build) runs the real binary: the process, its crashes and its exit.
package plugintest

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/pluginclient"
)

// stopTimeout bounds the drain of a plugin at the end of a test.
const stopTimeout = 5 * time.Second

// Options configures Start and StartProcess. The zero value works.
type Options struct {
	// Host answers the plugin's callbacks; nil means they fail with
	// pluginsdk.ErrUnavailable. A *Host records them.
	Host pluginsdk.Host
	// Config is handed to the plugin's Configure.
	Config []byte
	// MaxMessageSize bounds arguments and results; 0 means the default.
	MaxMessageSize int
	// SHA256, for StartProcess, is the binary's expected checksum (as Build
	// returns it); empty skips the check.
	SHA256 string
	// Env is the process's environment, for StartProcess.
	Env []string
	// Logger receives the driver's and the plugin's logs; nil logs to t.Log
	// at Info level.
	Logger hclog.Logger
}

// Plugin is a plugin under test. Its methods are safe for concurrent use.
type Plugin struct {
	client *pluginclient.Client
}

// Client returns the host-side driver, for what Plugin does not wrap: Pid,
// Exited, Stop, InFlight, Description.
func (p *Plugin) Client() *pluginclient.Client { return p.client }

// Call calls handle as caller (the zero PeerID for none) and returns the
// result; see pluginclient.Client.Call for the errors.
func (p *Plugin) Call(ctx context.Context, caller pluginsdk.PeerID, handle string, args []byte) ([]byte, error) {
	return p.client.Call(ctx, &pluginsdk.Request{Caller: caller, Handle: handle, Kind: pluginsdk.KindCall, Args: args})
}

// Send sends to handle as caller without waiting for the handler.
func (p *Plugin) Send(ctx context.Context, caller pluginsdk.PeerID, handle string, args []byte) error {
	return p.client.Send(ctx, &pluginsdk.Request{Caller: caller, Handle: handle, Kind: pluginsdk.KindSend, Args: args})
}

// Start serves cfg in-process over a call channel (an in-memory pipe, no
// process) and returns it configured and ready. The test fails at once if
// that does not work. Everything is stopped by t.Cleanup.
func Start(t testing.TB, cfg pluginsdk.Config, opts Options) *Plugin {
	t.Helper()
	log := opts.Logger
	if log == nil {
		log = TestLogger(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = log.Named(cfg.Name)
	}
	// An in-memory pipe rather than a socket pair: the race detector sees
	// what crosses it, as it would not see through the kernel.
	nodeConn, pluginConn := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- pluginsdk.ServeConn(context.Background(), pluginConn, cfg) }()
	t.Cleanup(func() {
		// The node's end is closed by then: the plugin's end has ended.
		select {
		case err := <-served:
			if err != nil {
				t.Logf("plugin channel: %v", err)
			}
		case <-time.After(stopTimeout):
			t.Errorf("plugin %q still serving %v after its node stopped", cfg.Name, stopTimeout)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), pluginclient.DefaultStartTimeout)
	defer cancel()
	c, err := pluginclient.Open(ctx, nodeConn, pluginclient.OpenConfig{
		Name:           cfg.Name,
		Host:           opts.Host,
		Config:         opts.Config,
		MaxMessageSize: opts.MaxMessageSize,
		Logger:         log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, c) })
	return &Plugin{client: c}
}

// StartProcess launches the plugin binary at path through pluginclient.Launch
// and returns it ready. The test
// fails at once if that does not work. The process is stopped by t.Cleanup.
func StartProcess(t testing.TB, path string, opts Options) *Plugin {
	t.Helper()
	log := opts.Logger
	if log == nil {
		log = TestLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pluginclient.DefaultStartTimeout)
	defer cancel()
	c, err := pluginclient.Launch(ctx, pluginclient.LaunchConfig{
		Name:           "plugin",
		Path:           path,
		Env:            opts.Env,
		SHA256:         opts.SHA256,
		Logger:         log,
		Host:           opts.Host,
		Config:         opts.Config,
		MaxMessageSize: opts.MaxMessageSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, c) })
	return &Plugin{client: c}
}

func stop(t testing.TB, c *pluginclient.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Errorf("stopping plugin: %v", err)
	}
}

// TestLogger returns an hclog.Logger at Info level that writes to t.Log and
// goes quiet once the test has finished.
func TestLogger(t testing.TB) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close) // registered first, so it runs last
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: w})
}

type testWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

var _ io.Writer = (*testWriter)(nil)

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(string(p[:len(p)-min(1, len(p))]))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
