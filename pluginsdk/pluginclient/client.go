// Package pluginclient implements the host side of the PeerNet plugin
// protocol: it launches a plugin binary through hashicorp/go-plugin, checks
// and configures it, calls it over its call channel, serves the plugin's
// callbacks into the node, and stops it without leaving processes behind.
//
// It knows nothing of the node: the node's plugin supervisor builds restarts,
// swaps and routing on top of a Client, and package plugintest uses it to
// test plugins.
package pluginclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/internal/channel"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// OpenConfig configures Open. Open does not modify it.
type OpenConfig struct {
	// Name names the plugin in logs and errors. Required.
	Name string
	// Host is served to the plugin for its callbacks; nil means the
	// plugin's callbacks fail with pluginsdk.ErrUnavailable.
	Host pluginsdk.Host
	// Config is handed to the plugin's Configure (JSON by convention).
	Config []byte
	// MaxMessageSize bounds each call's arguments and result; 0 means
	// pluginsdk.DefaultMaxMessageSize. At most pluginsdk.MaxMessageSizeLimit.
	MaxMessageSize int
	// Logger receives the client's logs; nil discards them.
	Logger hclog.Logger
}

func (cfg *OpenConfig) check() error {
	if cfg.Name == "" {
		return errors.New("pluginclient: plugin Name is empty")
	}
	if cfg.MaxMessageSize < 0 || cfg.MaxMessageSize > pluginsdk.MaxMessageSizeLimit {
		return fmt.Errorf("pluginclient: plugin %q: MaxMessageSize %d outside 0..%d", cfg.Name, cfg.MaxMessageSize, pluginsdk.MaxMessageSizeLimit)
	}
	return nil
}

// Description is what a plugin says about itself.
type Description struct {
	Name    string
	Version string
	// Handles is sorted and free of duplicates.
	Handles []string
}

// Client is a running plugin: one configured call channel and, when it came
// from Launch, the process behind it. Its methods are safe for concurrent
// use. Stop must be called to release it, also after the plugin crashed.
type Client struct {
	name string
	log  hclog.Logger
	desc Description
	host pluginsdk.Host
	ch   *channel.Channel

	proc *launched // nil for a Client from Open

	mu       sync.Mutex
	stopping bool
	loops    sync.WaitGroup // the process watcher

	exited chan struct{} // closed by Stop; for a Client from Open

	stopOnce sync.Once
	stopped  chan struct{}
	stopErr  error
}

// Open runs the protocol over conn, the node's end of a call channel
// (docs/plugin-protocol.md), whose other end a plugin serves: it asks the plugin to
// describe itself and configures it. Launch uses it; package plugintest
// uses it in-process. It blocks until the plugin is ready or ctx ends. The
// Client owns conn from now on, also when Open fails.
//
// A Client from Open has no process: Pid returns 0 and Exited is closed by
// Stop.
func Open(ctx context.Context, conn net.Conn, cfg OpenConfig) (*Client, error) {
	if err := cfg.check(); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return open(ctx, conn, cfg, nil)
}

func open(ctx context.Context, conn net.Conn, cfg OpenConfig, proc *launched) (*Client, error) {
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	maxMsg := cfg.MaxMessageSize
	if maxMsg == 0 {
		maxMsg = pluginsdk.DefaultMaxMessageSize
	}
	c := &Client{
		name:    cfg.Name,
		log:     log,
		host:    cfg.Host,
		proc:    proc,
		exited:  make(chan struct{}),
		stopped: make(chan struct{}),
	}
	c.ch = channel.New(conn, channel.Config{
		Name:           fmt.Sprintf("plugin %q", cfg.Name),
		MaxMessageSize: maxMsg,
		Handler:        c.callback,
		MaxIncoming:    maxCallbacks,
		Lost:           c.lost,
		Log:            log.With("plugin", cfg.Name),
		Outcome:        callbackOutcome,
	})
	fail := func(step string, err error) (*Client, error) {
		c.ch.Close(err)
		return nil, fmt.Errorf("pluginclient: %s plugin %q: %w", step, cfg.Name, err)
	}
	body, err := c.ch.Call(ctx, trust.PeerID{}, channel.HandleDescribe, nil)
	if err != nil {
		return fail("describing", err)
	}
	if c.desc, err = checkDescription(body); err != nil {
		return fail("describing", err)
	}
	args, _ := json.Marshal(channel.Configuration{MaxMessageSize: maxMsg, Config: cfg.Config, Callbacks: cfg.Host != nil})
	if _, err := c.ch.Call(ctx, trust.PeerID{}, channel.HandleConfigure, args); err != nil {
		return fail("configuring", err)
	}
	return c, nil
}

// maxCallbacks bounds the callbacks one plugin may have running at once;
// more are answered overloaded.
const maxCallbacks = 1024

// lost is the error of calls in flight when the channel ends, and of later
// calls.
func (c *Client) lost(cause error) error {
	c.mu.Lock()
	stopping := c.stopping
	c.mu.Unlock()
	if stopping {
		return ErrClosed
	}
	return fmt.Errorf("%w: %s: %v", ErrCrashed, c.name, cause)
}

func checkDescription(body []byte) (Description, error) {
	var d channel.Description
	if err := json.Unmarshal(body, &d); err != nil {
		return Description{}, fmt.Errorf("%w: description: %v", ErrProtocol, err)
	}
	if d.Protocol != pluginsdk.ProtocolVersion {
		return Description{}, fmt.Errorf("%w: plugin speaks protocol version %d, want %d", ErrProtocol, d.Protocol, pluginsdk.ProtocolVersion)
	}
	if d.Name == "" || len(d.Handles) == 0 {
		return Description{}, fmt.Errorf("%w: description has no name or no handles", ErrProtocol)
	}
	for _, h := range d.Handles {
		if err := wire.CheckHandle(h); err != nil {
			return Description{}, fmt.Errorf("%w: description: %v", ErrProtocol, err)
		}
	}
	handles := slices.Clone(d.Handles)
	slices.Sort(handles)
	return Description{Name: d.Name, Version: d.Version, Handles: slices.Compact(handles)}, nil
}

// Description returns what the plugin said about itself. The caller may
// modify the returned value's slice.
func (c *Client) Description() Description {
	d := c.desc
	d.Handles = slices.Clone(d.Handles)
	return d
}

// Pid returns the plugin's process ID, or 0 for a Client from Open.
func (c *Client) Pid() int {
	if c.proc == nil {
		return 0
	}
	return c.proc.proc.pid
}

// InFlight returns how many calls the plugin has not answered yet.
func (c *Client) InFlight() int { return c.ch.InFlight() }

// Exited returns a channel closed once the plugin process has exited and
// been reaped, whether it crashed or was stopped; for a Client from Open,
// once Stop has finished.
func (c *Client) Exited() <-chan struct{} {
	if c.proc != nil {
		return c.proc.proc.waited
	}
	return c.exited
}

// ExitErr reports how the process ended: nil while it runs or after exit
// status 0, otherwise an *exec.ExitError (e.g. "exit status 3", "signal:
// killed") or another error describing it. It does not block.
func (c *Client) ExitErr() error {
	select {
	case <-c.Exited():
		if c.proc != nil {
			return c.proc.proc.waitErr
		}
	default:
	}
	return nil
}

// Call calls req.Handle on behalf of req.Caller and returns the result, which
// the caller owns. req.Kind is ignored. It blocks until the plugin answers,
// ctx ends, or the plugin dies (ErrCrashed at once). ctx's deadline travels
// to the handler, whose context then ends with context.DeadlineExceeded
// too; when ctx is cancelled, the plugin is told to cancel the handler,
// whose context ends with context.Canceled. Errors: the plugin's answer as
// an *rpc.Error (a handler's error, handler_crashed, no_such_handle,
// too_large, unavailable, ...), ErrCrashed, ErrStopping, ErrClosed,
// ErrProtocol, context.DeadlineExceeded, context.Canceled.
//
// The arguments are written by a writer goroutine, possibly after Call has
// returned: the caller must not modify req.Args afterwards.
func (c *Client) Call(ctx context.Context, req *pluginsdk.Request) ([]byte, error) {
	if err := c.refuse(); err != nil {
		return nil, err
	}
	return c.ch.Call(ctx, req.Caller, req.Handle, req.Args)
}

// Send hands req to the plugin without waiting for the handler: it returns
// once the send is queued on the channel. ctx's deadline travels to the
// handler, but cancelling ctx afterwards does not cancel it. Its outcome is
// only logged. A graceful Stop lets the handler finish. Errors:
// ErrTooLarge, ErrCrashed, ErrStopping and ctx's error. As with Call,
// req.Args must not be modified afterwards.
func (c *Client) Send(ctx context.Context, req *pluginsdk.Request) error {
	if err := c.refuse(); err != nil {
		return err
	}
	return c.ch.Send(ctx, req.Caller, req.Handle, req.Args)
}

func (c *Client) refuse() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return ErrStopping
	}
	return nil
}

// Stop stops the plugin gracefully and releases everything the Client holds.
// New calls fail with ErrStopping at once. The plugin is asked to finish
// (the channel is retired): calls and sends in flight may finish until ctx
// ends, after which calls fail with ErrClosed and the process is killed.
// A plugin that finished exits by itself; one that does not is stopped by
// go-plugin (which falls back to SIGKILL after two seconds), and its whole
// process group is killed, so nothing it started survives. Stop blocks
// until all of that is done and every goroutine the Client started has
// ended. It returns an error when calls had to be abandoned. It is
// idempotent and safe to call concurrently; later calls wait for the first
// and return its result.
func (c *Client) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		c.stopErr = c.stop(ctx)
		close(c.stopped)
	})
	<-c.stopped
	return c.stopErr
}

func (c *Client) stop(ctx context.Context) error {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	if n := c.ch.InFlight(); n > 0 {
		c.log.Debug("draining plugin", "plugin", c.name, "in_flight", n)
	}
	c.ch.Retire()
	var err error
	select {
	case <-c.ch.Done():
	case <-ctx.Done():
		err = fmt.Errorf("pluginclient: stopping plugin %q with %d calls in flight: %w", c.name, c.InFlight(), ctx.Err())
	}
	c.ch.Close(ErrClosed)
	c.ch.Wait()
	if c.proc != nil {
		c.proc.stop(err != nil)
	}
	c.loops.Wait()
	close(c.exited)
	return err
}
