package pluginsdk

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/peernet/peernet/pluginsdk/internal/outbox"
	"github.com/peernet/peernet/pluginsdk/pluginpb"
	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

const (
	// maxErrorLen bounds the error text of a reply, so that a reply is never
	// much larger than its body limit.
	maxErrorLen = 4096
	// frameOverhead approximates the protobuf framing of one frame, for
	// batching.
	frameOverhead = 32
	// maxRecvMsgSize is the plugin's limit on one message from the host: a
	// batch of calls. The host bounds each call's arguments by its maximum
	// message size and each batch by that size too.
	maxRecvMsgSize = MaxMessageSizeLimit + 1<<20
)

// GRPCPlugin returns the go-plugin plugin that serves cfg: the plugin half of
// the protocol, registered on go-plugin's gRPC server. Plugin mains call
// Serve instead; this exists for the test kit (plugintest) and for embedding
// a plugin in another go-plugin setup. Its GRPCClient method fails: the host
// half lives in package pluginclient. The returned value is also an
// io.Closer: Close releases the connection to the host's callbacks, which
// Serve does when the plugin exits; call it once the gRPC server has
// stopped.
func GRPCPlugin(cfg Config) (plugin.GRPCPlugin, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	return &grpcPlugin{srv: s}, nil
}

type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv *server
}

func (p *grpcPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	p.srv.broker = broker
	pluginpb.RegisterPluginServer(s, p.srv)
	return nil
}

// Close releases the host callback connection.
func (p *grpcPlugin) Close() error {
	p.srv.close()
	return nil
}

func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("pluginsdk: the host side of the protocol is package pluginclient")
}

// server is the plugin half of the protocol.
type server struct {
	pluginpb.UnimplementedPluginServer

	cfg     Config
	handles []string
	log     hclog.Logger
	broker  *plugin.GRPCBroker // set at registration

	mu         sync.Mutex
	configured bool // Configure was called
	ready      bool // Configure succeeded
	maxMsg     int
	host       *hostClient
	draining   bool
	handlers   sync.WaitGroup // running handler goroutines
	sessions   map[*session]struct{}
	shutdown   chan struct{} // closed by endSessions
}

func newServer(cfg Config) (*server, error) {
	if cfg.Name == "" {
		return nil, errors.New("pluginsdk: Config.Name is empty")
	}
	if len(cfg.Handlers) == 0 {
		return nil, fmt.Errorf("pluginsdk: plugin %q has no handlers", cfg.Name)
	}
	handles := make([]string, 0, len(cfg.Handlers))
	for h, fn := range cfg.Handlers {
		if err := wire.CheckHandle(h); err != nil {
			return nil, fmt.Errorf("pluginsdk: plugin %q: invalid handle name: %w", cfg.Name, err)
		}
		if fn == nil {
			return nil, fmt.Errorf("pluginsdk: plugin %q: handler for %q is nil", cfg.Name, h)
		}
		handles = append(handles, h)
	}
	slices.Sort(handles)
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &server{cfg: cfg, handles: handles, log: log, maxMsg: DefaultMaxMessageSize, sessions: make(map[*session]struct{}), shutdown: make(chan struct{})}, nil
}

func (s *server) Describe(context.Context, *pluginpb.DescribeRequest) (*pluginpb.Description, error) {
	return &pluginpb.Description{
		Name:            s.cfg.Name,
		Version:         s.cfg.Version,
		Handles:         s.handles,
		ProtocolVersion: ProtocolVersion,
	}, nil
}

func (s *server) Configure(ctx context.Context, req *pluginpb.ConfigureRequest) (*pluginpb.ConfigureResponse, error) {
	s.mu.Lock()
	if s.configured {
		s.mu.Unlock()
		return nil, status.Error(codes.FailedPrecondition, "pluginsdk: already configured")
	}
	s.configured = true
	if m := int(req.MaxMessageSize); m > 0 && m <= MaxMessageSizeLimit {
		s.maxMsg = m
	}
	s.mu.Unlock()

	host := &hostClient{}
	if req.HostBrokerId != 0 {
		conn, err := s.broker.DialWithOptions(req.HostBrokerId,
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)))
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "pluginsdk: dialing host callbacks: %v", err)
		}
		host = &hostClient{conn: conn, c: pluginpb.NewHostClient(conn)}
	}
	s.mu.Lock()
	s.host = host
	s.mu.Unlock()
	if s.cfg.Configure != nil {
		if err := s.cfg.Configure(ctx, host, req.Config); err != nil {
			return nil, status.Error(codes.InvalidArgument, cleanText(err.Error()))
		}
	}
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
	return &pluginpb.ConfigureResponse{}, nil
}

// close releases the host callback connection.
func (s *server) close() {
	s.mu.Lock()
	h := s.host
	s.host = nil
	s.mu.Unlock()
	if h != nil && h.conn != nil {
		_ = h.conn.Close()
	}
}

// drain stops accepting calls and waits up to grace for running handlers
// and for their replies to be sent. It reports whether all of that finished.
func (s *server) drain(grace time.Duration) bool {
	t := time.NewTimer(grace)
	defer t.Stop()
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	handlersDone := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(handlersDone)
	}()
	select {
	case <-handlersDone:
	case <-t.C:
		return false
	}
	s.mu.Lock()
	flushed := make([]<-chan struct{}, 0, len(s.sessions))
	for ss := range s.sessions {
		flushed = append(flushed, ss.out.Flushed())
	}
	s.mu.Unlock()
	for _, ch := range flushed {
		select {
		case <-ch:
		case <-t.C:
			return false
		}
	}
	return true
}

// endSessions ends every Calls stream from the plugin's side: each handler
// returns, so gRPC sends the stream's trailers after the replies already
// queued. Call it after drain.
func (s *server) endSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.shutdown:
	default:
		close(s.shutdown)
	}
}

// session is one Calls stream.
type session struct {
	srv    *server
	ctx    context.Context // cancelled when the stream ends
	out    *outbox.Outbox[*pluginpb.PluginFrame]
	maxMsg int

	mu       sync.Mutex
	inflight map[uint64]context.CancelFunc
}

func (s *server) Calls(stream pluginpb.Plugin_CallsServer) error {
	s.mu.Lock()
	ready, maxMsg := s.ready, s.maxMsg
	s.mu.Unlock()
	if !ready {
		return status.Error(codes.FailedPrecondition, "pluginsdk: Calls before a successful Configure")
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	ss := &session{
		srv:      s,
		ctx:      ctx,
		out:      outbox.New[*pluginpb.PluginFrame](),
		maxMsg:   maxMsg,
		inflight: make(map[uint64]context.CancelFunc),
	}
	s.mu.Lock()
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sessions, ss)
		s.mu.Unlock()
	}()
	writeErr := make(chan error, 1)
	go func() {
		err := ss.out.Run(ctx.Done(), maxMsg, replySize, func(frames []*pluginpb.PluginFrame) error {
			return stream.Send(&pluginpb.PluginFrames{Frames: frames})
		})
		cancel() // a failed send ends the session
		writeErr <- err
	}()
	// Recv runs in its own goroutine so that endSessions can end the stream
	// while it blocks; it returns once the handler has returned.
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			msg, err := stream.Recv()
			if err != nil {
				return
			}
			for _, f := range msg.Frames {
				switch f := f.Frame.(type) {
				case *pluginpb.HostFrame_Call:
					ss.start(f.Call)
				case *pluginpb.HostFrame_Cancel:
					ss.cancel(f.Cancel.Id)
				}
			}
		}
	}()
	select {
	case <-recvDone:
	case <-s.shutdown:
	}
	cancel()
	if err := <-writeErr; err != nil {
		s.log.Debug("calls stream ended", "error", err)
	}
	return nil
}

func replySize(f *pluginpb.PluginFrame) int {
	r := f.GetReply()
	return len(r.GetBody()) + len(r.GetError()) + frameOverhead
}

// start runs one call in its own goroutine, or answers it at once when it
// cannot run.
func (ss *session) start(c *pluginpb.Call) {
	h := ss.srv.cfg.Handlers[c.Handle]
	if h == nil {
		ss.reply(c.Id, rpc.StatusNoSuchHandle, nil, fmt.Sprintf("plugin %q has no handle %q", ss.srv.cfg.Name, c.Handle))
		return
	}
	req := &Request{Handle: c.Handle, Args: c.Args, Kind: Kind(c.Kind)} // the same values
	if len(c.Caller) != 0 {
		id, err := trust.PeerIDFromBytes(c.Caller)
		if err != nil {
			ss.reply(c.Id, rpc.StatusBadRequest, nil, "malformed caller: "+err.Error())
			return
		}
		req.Caller = id
	}

	var ctx context.Context
	var cancel context.CancelFunc
	if c.TimeoutUs > 0 {
		ctx, cancel = context.WithTimeout(ss.ctx, time.Duration(c.TimeoutUs)*time.Microsecond)
	} else {
		ctx, cancel = context.WithCancel(ss.ctx)
	}

	s := ss.srv
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		cancel()
		ss.reply(c.Id, rpc.StatusUnavailable, nil, "plugin is shutting down")
		return
	}
	s.handlers.Add(1)
	s.mu.Unlock()

	ss.mu.Lock()
	ss.inflight[c.Id] = cancel
	ss.mu.Unlock()
	go func() {
		defer s.handlers.Done()
		st, body, msg := s.invoke(ctx, h, req, ss.maxMsg)
		ss.mu.Lock()
		delete(ss.inflight, c.Id)
		ss.mu.Unlock()
		cancel()
		ss.reply(c.Id, st, body, msg)
	}()
}

func (ss *session) cancel(id uint64) {
	ss.mu.Lock()
	cancel := ss.inflight[id]
	ss.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (ss *session) reply(id uint64, st rpc.Status, body []byte, msg string) {
	msg = cleanText(msg)
	ss.out.Push(&pluginpb.PluginFrame{Frame: &pluginpb.PluginFrame_Reply{Reply: &pluginpb.Reply{
		Id: id, Status: uint32(st), Body: body, Error: msg,
	}}})
}

// invoke runs h, turning its outcome, including a panic, into a reply's
// status, body and message, as the node does for its own handlers.
func (s *server) invoke(ctx context.Context, h Handler, req *Request, maxMsg int) (st rpc.Status, body []byte, msg string) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("handler panicked", "handle", req.Handle, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			st, body, msg = rpc.StatusHandlerCrashed, nil, fmt.Sprint(v)
		}
	}()
	body, err := h.Handle(ctx, req)
	switch {
	case err == nil && req.Kind == KindSend:
		return rpc.StatusOK, nil, ""
	case err == nil && len(body) > maxMsg:
		return rpc.StatusTooLarge, nil, fmt.Sprintf("result of %q is %d bytes, limit %d", req.Handle, len(body), maxMsg)
	case err == nil:
		return rpc.StatusOK, body, ""
	}
	st, msg = rpc.Outcome(ctx, err)
	return st, nil, msg
}

// cleanText makes s fit a protobuf string field of a reply: valid UTF-8 (the
// encoder refuses anything else, which would end the whole stream) and at
// most maxErrorLen bytes.
func cleanText(s string) string {
	if len(s) > maxErrorLen {
		cut := maxErrorLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
