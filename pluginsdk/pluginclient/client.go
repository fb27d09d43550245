// Package pluginclient implements the host side of the PeerNet plugin
// protocol: it launches a plugin binary through hashicorp/go-plugin, checks
// and configures it, multiplexes calls to it over one gRPC stream, serves the
// plugin's callbacks into the node, and stops it without leaving processes
// behind.
//
// It knows nothing of the node: the node's plugin supervisor builds restarts,
// swaps and routing on top of a Client, and package plugintest uses it to
// test plugins.
package pluginclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/internal/outbox"
	"github.com/peernet/peernet/pluginsdk/pluginpb"
	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/wire"
)

const (
	// recvSlack is what a batch of replies may carry beyond MaxMessageSize:
	// framing and one error text.
	recvSlack = 64 << 10
	// frameOverhead approximates the protobuf framing of one call frame.
	frameOverhead = 64
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

// Client is a running plugin: one configured protocol session and, when it
// came from Launch, the process behind it. Its methods are safe for
// concurrent use. Stop must be called to release it, also after the plugin
// crashed.
type Client struct {
	name   string
	log    hclog.Logger
	desc   Description
	maxMsg int

	stream       pluginpb.Plugin_CallsClient
	cancelStream context.CancelFunc
	out          *outbox.Outbox[*pluginpb.HostFrame]
	done         chan struct{}  // closed by Stop; ends the writer
	loops        sync.WaitGroup // reader and writer

	proc *launched // nil for a Client from Open

	mu       sync.Mutex
	nextID   uint64
	pending  map[uint64]*pending
	stopping bool
	failed   error         // why the session is over; nil while it runs
	gone     chan struct{} // closed when failed is set
	drained  chan struct{} // closed when stopping and nothing is pending

	exited chan struct{} // closed by Stop; for a Client from Open

	stopOnce sync.Once
	stopped  chan struct{}
	stopErr  error
}

type pending struct {
	handle string
	send   bool
	ch     chan result // nil for a send
}

type result struct {
	body []byte
	err  error
}

// grpcParts is what the host half of the go-plugin plugin dispenses.
type grpcParts struct {
	conn   *grpc.ClientConn
	broker *plugin.GRPCBroker
}

// hostPlugin is the go-plugin plugin on the host side: it hands out the
// connection and broker for the protocol to use.
type hostPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (hostPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("pluginclient: the plugin side of the protocol is package pluginsdk")
}

func (hostPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &grpcParts{conn: conn, broker: broker}, nil
}

// Open runs the protocol over an established go-plugin gRPC connection to a
// plugin and its broker: Describe, Configure (serving cfg.Host on the broker)
// and the Calls stream. Launch uses it; package plugintest uses it on an
// in-process connection. It blocks until the plugin is ready or ctx ends.
//
// The caller keeps owning conn and broker and must close them after Stop;
// closing the broker also stops the Host service. A Client from Open has no
// process: Pid returns 0 and Exited is closed by Stop.
func Open(ctx context.Context, conn *grpc.ClientConn, broker *plugin.GRPCBroker, cfg OpenConfig) (*Client, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return open(ctx, conn, broker, cfg, nil, nil)
}

// open starts the session; hostWG tracks the Host service goroutine.
func open(ctx context.Context, conn *grpc.ClientConn, broker *plugin.GRPCBroker, cfg OpenConfig, proc *launched, hostWG *sync.WaitGroup) (*Client, error) {
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	maxMsg := cfg.MaxMessageSize
	if maxMsg == 0 {
		maxMsg = pluginsdk.DefaultMaxMessageSize
	}
	pc := pluginpb.NewPluginClient(conn)
	d, err := pc.Describe(ctx, &pluginpb.DescribeRequest{})
	if err != nil {
		return nil, fmt.Errorf("pluginclient: describing plugin %q: %w", cfg.Name, err)
	}
	desc, err := checkDescription(d)
	if err != nil {
		return nil, fmt.Errorf("pluginclient: plugin %q: %w", cfg.Name, err)
	}

	var brokerID uint32
	if cfg.Host != nil {
		brokerID = broker.NextId()
		hs := &hostServer{host: cfg.Host, log: log}
		if hostWG == nil {
			hostWG = new(sync.WaitGroup)
		}
		hostWG.Add(1)
		go func() {
			defer hostWG.Done()
			broker.AcceptAndServe(brokerID, hs.newServer)
		}()
	}
	if _, err := pc.Configure(ctx, &pluginpb.ConfigureRequest{
		Config:         cfg.Config,
		HostBrokerId:   brokerID,
		MaxMessageSize: uint32(maxMsg),
	}); err != nil {
		return nil, fmt.Errorf("pluginclient: configuring plugin %q: %w", cfg.Name, err)
	}

	sctx, cancel := context.WithCancel(context.Background())
	stream, err := pc.Calls(sctx, grpc.MaxCallRecvMsgSize(maxMsg+recvSlack))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("pluginclient: opening calls to plugin %q: %w", cfg.Name, err)
	}
	c := &Client{
		name:         cfg.Name,
		log:          log,
		desc:         desc,
		maxMsg:       maxMsg,
		stream:       stream,
		cancelStream: cancel,
		out:          outbox.New[*pluginpb.HostFrame](),
		done:         make(chan struct{}),
		proc:         proc,
		pending:      make(map[uint64]*pending),
		gone:         make(chan struct{}),
		drained:      make(chan struct{}),
		exited:       make(chan struct{}),
		stopped:      make(chan struct{}),
	}
	c.loops.Add(2)
	go c.readLoop()
	go c.writeLoop()
	return c, nil
}

func checkDescription(d *pluginpb.Description) (Description, error) {
	if d.ProtocolVersion != pluginsdk.ProtocolVersion {
		return Description{}, fmt.Errorf("%w: plugin speaks protocol version %d, want %d", ErrProtocol, d.ProtocolVersion, pluginsdk.ProtocolVersion)
	}
	if d.Name == "" || len(d.Handles) == 0 {
		return Description{}, fmt.Errorf("%w: description has no name or no handles", ErrProtocol)
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

// InFlight returns how many calls and sends the plugin has not answered yet.
func (c *Client) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

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
// ctx ends (the plugin is told to cancel the call, and ctx's error is
// returned), or the plugin dies (ErrCrashed at once). ctx's deadline travels
// to the handler. Errors: the plugin's answer as an *rpc.Error (a handler's
// error, handler_crashed, no_such_handle, too_large, unavailable, ...),
// ErrCrashed, ErrStopping, ErrClosed, ErrProtocol, context.DeadlineExceeded,
// context.Canceled.
//
// The request is encoded by a writer goroutine, possibly after Call has
// returned: the caller must not modify req.Args afterwards.
func (c *Client) Call(ctx context.Context, req *pluginsdk.Request) ([]byte, error) {
	return c.do(ctx, req, false)
}

// Send hands req to the plugin without waiting for the handler: it returns
// once the send is queued on the stream. ctx's deadline travels to the
// handler, but cancelling ctx afterwards does not cancel it. The send counts
// in InFlight, and Stop waits for it, until the handler has finished; its
// outcome is only logged. Errors: ErrTooLarge, ErrCrashed, ErrStopping and
// ctx's error. As with Call, req.Args must not be modified afterwards.
func (c *Client) Send(ctx context.Context, req *pluginsdk.Request) error {
	_, err := c.do(ctx, req, true)
	return err
}

func (c *Client) do(ctx context.Context, req *pluginsdk.Request, send bool) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(req.Args) > c.maxMsg {
		return nil, rpc.Errorf(rpc.StatusTooLarge, fmt.Sprintf("arguments to %q are %d bytes, limit %d", req.Handle, len(req.Args), c.maxMsg))
	}
	if err := wire.CheckHandle(req.Handle); err != nil {
		return nil, rpc.Errorf(rpc.StatusBadRequest, err.Error())
	}
	call := &pluginpb.Call{Handle: req.Handle, Args: req.Args, Kind: pluginpb.Kind(rpc.KindCall)}
	if send {
		call.Kind = pluginpb.Kind(rpc.KindSend)
	}
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d <= 0 {
			return nil, context.DeadlineExceeded
		}
		call.TimeoutUs = uint64((d + time.Microsecond - 1) / time.Microsecond)
	}
	if !req.Caller.IsZero() {
		k := req.Caller.Bytes()
		call.Caller = k[:]
	}

	p := &pending{handle: req.Handle, send: send}
	if !send {
		p.ch = make(chan result, 1)
	}
	c.mu.Lock()
	switch {
	case c.stopping:
		c.mu.Unlock()
		return nil, ErrStopping
	case c.failed != nil:
		err := c.failed
		c.mu.Unlock()
		return nil, err
	}
	c.nextID++
	call.Id = c.nextID
	c.pending[call.Id] = p
	c.mu.Unlock()

	c.out.Push(&pluginpb.HostFrame{Frame: &pluginpb.HostFrame_Call{Call: call}})
	if send {
		return nil, nil
	}
	select {
	case r := <-p.ch:
		return r.body, r.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	_, waiting := c.pending[call.Id]
	if waiting {
		c.forgetLocked(call.Id)
	}
	c.mu.Unlock()
	if !waiting { // the answer won the race
		r := <-p.ch
		return r.body, r.err
	}
	c.out.Push(&pluginpb.HostFrame{Frame: &pluginpb.HostFrame_Cancel{Cancel: &pluginpb.Cancel{Id: call.Id}}})
	return nil, ctx.Err()
}

func (c *Client) forgetLocked(id uint64) {
	delete(c.pending, id)
	c.checkDrainedLocked()
}

// checkDrainedLocked closes drained once Stop waits and nothing is pending.
func (c *Client) checkDrainedLocked() {
	if c.stopping && len(c.pending) == 0 {
		select {
		case <-c.drained:
		default:
			close(c.drained)
		}
	}
}

func (c *Client) readLoop() {
	defer c.loops.Done()
	for {
		msg, err := c.stream.Recv()
		if errors.Is(err, io.EOF) {
			c.fail(fmt.Errorf("%w: %s: plugin ended the call stream", ErrCrashed, c.name))
			return
		}
		if err != nil {
			c.fail(fmt.Errorf("%w: %s: connection lost: %v", ErrCrashed, c.name, err))
			return
		}
		for _, f := range msg.Frames {
			r := f.GetReply()
			if r == nil {
				continue
			}
			c.mu.Lock()
			p := c.pending[r.Id]
			if p != nil {
				c.forgetLocked(r.Id)
			}
			c.mu.Unlock()
			switch {
			case p == nil: // cancelled, or a late answer
			case p.send:
				if st := rpc.Status(r.Status); st != rpc.StatusOK {
					c.log.Debug("send failed", "plugin", c.name, "handle", p.handle, "status", st, "error", r.Error)
				}
			default:
				p.ch <- replyResult(r)
			}
		}
	}
}

func (c *Client) writeLoop() {
	defer c.loops.Done()
	err := c.out.Run(c.done, c.maxMsg, callSize, func(frames []*pluginpb.HostFrame) error {
		return c.stream.Send(&pluginpb.HostFrames{Frames: frames})
	})
	if err != nil {
		c.fail(fmt.Errorf("%w: %s: connection lost: %v", ErrCrashed, c.name, err))
	}
}

func callSize(f *pluginpb.HostFrame) int {
	call := f.GetCall()
	return len(call.GetArgs()) + len(call.GetHandle()) + frameOverhead
}

// fail ends the session: every waiting call gets err (unless Stop already
// decided otherwise), and so does every later one.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.failed == nil {
		c.failed = err
		close(c.gone)
	}
	if c.stopping {
		err = ErrClosed
	}
	waiting := c.pending
	c.pending = make(map[uint64]*pending)
	c.checkDrainedLocked()
	c.mu.Unlock()
	for _, p := range waiting {
		if !p.send {
			p.ch <- result{err: err}
		}
	}
}

// replyResult is what Call returns for a plugin's reply: the body, or an
// *rpc.Error carrying the status and the plugin's message (for a deadline
// without a message, context.DeadlineExceeded itself).
func replyResult(r *pluginpb.Reply) result {
	st := rpc.Status(r.Status)
	switch {
	case st == rpc.StatusOK:
		return result{body: r.Body}
	case (st == rpc.StatusDeadlineExceeded || st == rpc.StatusCanceled) && r.Error == "":
		return result{err: st.Err()}
	case !st.Known():
		return result{err: fmt.Errorf("%w: reply with unknown status %d: %s", ErrProtocol, r.Status, r.Error)}
	}
	return result{err: rpc.Errorf(st, r.Error)}
}

// Stop stops the plugin gracefully and releases everything the Client holds.
// New calls fail with ErrStopping at once; calls in flight may finish until
// ctx ends, after which they fail with ErrClosed and the process is killed. Then
// the plugin is asked to exit (go-plugin's Kill, which falls back to SIGKILL
// after two seconds), and its whole process group is killed, so nothing it
// started survives. Stop blocks until all of that is done and every goroutine
// the Client started has ended. It returns an error when calls had to be
// abandoned. It is idempotent and safe to call concurrently; later calls wait
// for the first and return its result.
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
	n := len(c.pending)
	c.checkDrainedLocked()
	c.mu.Unlock()
	if n > 0 {
		c.log.Debug("draining plugin", "plugin", c.name, "in_flight", n)
	}

	var err error
	select {
	case <-c.drained:
	case <-c.gone:
	case <-ctx.Done():
		err = fmt.Errorf("pluginclient: stopping plugin %q with %d calls in flight: %w", c.name, c.InFlight(), ctx.Err())
	}
	c.fail(ErrClosed)
	close(c.done)
	c.cancelStream()
	c.loops.Wait()
	if c.proc != nil {
		c.proc.stop(err != nil)
	}
	close(c.exited)
	return err
}
