package control

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/netutil"
	"golang.org/x/sys/unix"

	"github.com/peernet/peernet/config"
	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// Backend is what a Server needs from the node it controls. The daemon
// implements it over its node and plugin supervisor. Its methods are called
// concurrently, one goroutine per request; those taking a context must
// return soon after it ends.
type Backend interface {
	// Status describes the node, its peers and its plugins.
	Status() Status
	// Plugins describes the plugins, as Status does.
	Plugins() []PluginStatus

	// Peers, Trust, Untrust, Connect, Disconnect, Call and Send are
	// host.Node's.
	Peers() []host.PeerInfo
	Trust(id trust.PeerID, label string) error
	Untrust(id trust.PeerID) error
	Connect(ctx context.Context, id trust.PeerID, addr string) error
	Disconnect(id trust.PeerID) error
	Call(ctx context.Context, id trust.PeerID, handle string, args []byte) ([]byte, error)
	Send(ctx context.Context, id trust.PeerID, handle string, args []byte) error

	// Reload re-reads the node's configuration file and applies it. An
	// error matching config.ErrInvalid means the file was refused and
	// nothing changed; any other error means nothing was applied either.
	// Plugins that did not come up are reported in the answer's Warning.
	Reload(ctx context.Context) (ReloadResponse, error)
	// Revoke closes a plugin's handle, or the whole plugin if handle is "".
	Revoke(plugin, handle string) error
}

// MaxConns bounds the connections a Server reads requests from at once.
// The client opens a connection per request; connections beyond the bound
// wait in the socket's backlog until one finishes.
const MaxConns = 64

// Request limits. A request's headers are bounded by readHeaderTimeout and
// maxHeaderBytes, then its body by Config.ReadTimeout and a size that fits
// the route: the node's maximum message size for call and send, whose
// arguments ride in the body, maxSmallBody for the rest.
const (
	// DefaultReadTimeout is Config.ReadTimeout's default: ample for the
	// largest body over a local socket, short enough that a stalled client
	// does not hold a request slot for long.
	DefaultReadTimeout = 10 * time.Second
	// DefaultMaxRequests is Config.MaxRequests's default.
	DefaultMaxRequests = 16

	// readHeaderTimeout bounds how long a client may take to send a
	// request's headers.
	readHeaderTimeout = 5 * time.Second
	// maxHeaderBytes bounds a request's header lines: the API's requests
	// have a few short headers and at most a peer name in the query. More
	// is answered 431 by net/http.
	maxHeaderBytes = 8 << 10
	// maxSmallBody bounds the body of every request but call and send: a
	// peer id and label, an address, a plugin and handle name.
	maxSmallBody = 64 << 10
	// callFraming is what a call or send body holds besides its arguments:
	// the JSON field names, the peer, the handle (up to 255 bytes, each
	// escaped to at most 6) and the timeout.
	callFraming = 16 << 10
)

// Config configures a Server. The zero value works; Listen does not modify
// it.
type Config struct {
	// MaxMessageSize is the node's maximum message size
	// (host.Config.MaxMessageSize): the arguments of a call or send request
	// may be that large, so its body may hold them base64-encoded plus
	// callFraming bytes; a larger body is answered 413 (CodeTooLarge).
	// 0 means wire.DefaultMaxMessageSize.
	MaxMessageSize int
	// ReadTimeout bounds how long a client may take to send a request's
	// body once its headers are in; a slower one is answered 408
	// (CodeRequestTimeout). 0 means DefaultReadTimeout.
	ReadTimeout time.Duration
	// MaxRequests caps the requests handled at once, which with the body
	// limits bounds the memory the control socket can hold: one more is
	// answered 503 (CodeBusy) at once, before its body is read. 0 means
	// DefaultMaxRequests.
	MaxRequests int
}

// callBodyLimit is the largest call or send body for a node whose maximum
// message size is maxMsg: the arguments, base64-encoded, and the framing.
func callBodyLimit(maxMsg int) int64 {
	if maxMsg <= 0 {
		maxMsg = wire.DefaultMaxMessageSize
	}
	return int64(base64.StdEncoding.EncodedLen(maxMsg)) + callFraming
}

// Server serves the control protocol on a Unix socket for one Backend.
type Server struct {
	backend  Backend
	path     string
	ln       net.Listener
	srv      *http.Server
	served   chan struct{} // closed when srv.Serve has returned
	callBody int64         // body limit of call and send
	timeout  time.Duration // Config.ReadTimeout, defaulted
	slots    chan struct{} // one per request being handled; Config.MaxRequests

	// mu guards closed and the Add side of handlers: a request that
	// arrives after Shutdown has begun is refused rather than counted.
	mu       sync.Mutex
	closed   bool
	handlers sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error
}

// route is one request the Server answers. serve returns the answer to
// encode as JSON, or an error that errorOf turns into the protocol's Error.
// serve gets the request's body read whole (within its limit, see
// readBody), or nil for requests without one.
type route struct {
	method, path string
	serve        func(s *Server, r *http.Request, body []byte) (any, error)
	callBody     bool // its body is bounded by callBodyLimit, else maxSmallBody
}

// routes is every request of the protocol.
var routes = []route{
	{http.MethodGet, PathStatus, (*Server).status, false},
	{http.MethodGet, PathPeers, (*Server).peers, false},
	{http.MethodGet, PathTrust, (*Server).peers, false},
	{http.MethodPost, PathTrust, (*Server).trust, false},
	{http.MethodDelete, PathTrust, (*Server).untrust, false},
	{http.MethodPost, PathConnect, (*Server).connect, false},
	{http.MethodPost, PathDisconnect, (*Server).disconnect, false},
	{http.MethodPost, PathCall, (*Server).call, true},
	{http.MethodPost, PathSend, (*Server).send, true},
	{http.MethodGet, PathPlugins, (*Server).plugins, false},
	{http.MethodPost, PathReload, (*Server).reload, false},
	{http.MethodPost, PathRevoke, (*Server).revoke, false},
}

// Listen creates the control socket at path, mode 0600, and serves backend
// on it in the background until Shutdown, within cfg's limits. A file
// already at path is replaced, as a socket a crashed node left behind: the
// caller must hold what guarantees that no live server uses path (the
// node's data-dir lock).
//
// The socket is made private without touching the process's umask, which
// other goroutines rely on: it is bound, then chmod'ed to 0600 and checked,
// and only then listens, so no client can connect while it is open to
// others.
func Listen(path string, backend Backend, cfg Config) (*Server, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control: removing stale control socket: %w", err)
	}
	ln, err := listenPrivate(path)
	if err != nil {
		return nil, err
	}
	s := &Server{
		backend:  backend,
		path:     path,
		ln:       ln,
		served:   make(chan struct{}),
		callBody: callBodyLimit(cfg.MaxMessageSize),
		timeout:  cmp.Or(cfg.ReadTimeout, DefaultReadTimeout),
		slots:    make(chan struct{}, cmp.Or(cfg.MaxRequests, DefaultMaxRequests)),
	}
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.method+" "+rt.path, s.handler(rt))
	}
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// net/http logs malformed requests and the like; they are
		// answered, and a client of the node's own uid sent them.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(s.served)
		s.srv.Serve(netutil.LimitListener(ln, MaxConns))
	}()
	return s, nil
}

// listenPrivate creates a listening Unix socket at path, mode 0600 and
// owned by this process's uid, checked before it listens.
func listenPrivate(path string) (net.Listener, error) {
	// Close-on-exec, set under ForkLock as the os package does (not every
	// system has SOCK_CLOEXEC), so that no child started meanwhile
	// inherits it.
	syscall.ForkLock.RLock()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("control: creating control socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), path) // closes fd
	defer f.Close()
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return nil, fmt.Errorf("control: creating control socket %s: %w", path, err)
	}
	// Until listen(2), connecting is refused whatever the mode.
	if err := secure(path); err != nil {
		os.Remove(path)
		return nil, err
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("control: listening on control socket %s: %w", path, err)
	}
	ln, err := net.FileListener(f) // a duplicate of fd
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("control: listening on control socket %s: %w", path, err)
	}
	// As net.Listen's would: the socket's name goes the moment it stops
	// listening, while requests in flight finish.
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	return ln, nil
}

// secure makes the socket file at path 0600 and checks that it is a
// socket of this uid with that mode.
func secure(path string) error {
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("control: securing control socket: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("control: securing control socket: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 || st == nil || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("control: securing control socket: %s is %v after chmod 600, not a private socket of uid %d", path, fi.Mode(), os.Geteuid())
	}
	return nil
}

// Path is the control socket's path.
func (s *Server) Path() string { return s.path }

// Shutdown stops the server: it closes the socket and removes its file,
// lets requests in flight finish until ctx ends, then cancels the rest
// (their backends see their contexts end) and waits for every handler to
// return. Safe to call more than once; later calls wait as the first does
// and return its result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		err := s.srv.Shutdown(ctx)
		if err != nil {
			// Closing the connections cancels the requests' contexts.
			s.srv.Close()
		}
		<-s.served
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.handlers.Wait()
		if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
			err = fmt.Errorf("control: removing control socket: %w", rerr)
		}
		s.shutdownErr = err
	})
	return s.shutdownErr
}

// handler adapts rt to net/http: it turns away a request over
// Config.MaxRequests (503) or the node stopping (503), reads the body within
// its limits (413, 408), counts the request for Shutdown, and writes rt's
// answer or error as JSON.
func (s *Server) handler(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.slots <- struct{}{}:
			defer func() { <-s.slots }()
		default:
			writeError(w, &Error{Code: CodeBusy, Message: fmt.Sprintf(
				"control: node busy: %d control requests in progress, the most it handles at once; retry when some have finished", cap(s.slots))})
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			writeJSON(w, http.StatusServiceUnavailable, Error{Code: CodeFailed, Message: "control: node is stopping"})
			return
		}
		s.handlers.Add(1)
		s.mu.Unlock()
		defer s.handlers.Done()

		limit := int64(maxSmallBody)
		if rt.callBody {
			limit = s.callBody
		}
		body, err := s.readBody(w, r, limit)
		if err != nil {
			writeError(w, err)
			return
		}
		out, err := rt.serve(s, r, body)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// readBody reads r's body whole: at most limit bytes (else CodeTooLarge,
// without reading a body whose declared length is over it) within
// Server.timeout (else CodeRequestTimeout). Reading to the end also lets
// net/http watch the connection, so that a client that goes away cancels
// the request's context.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	tooLarge := func(n string) error {
		return &Error{Code: CodeTooLarge, Message: fmt.Sprintf(
			"control: request body of %s bytes is over the %d-byte limit of %s %s (for call and send it follows the node's max_message_size)", n, limit, r.Method, r.URL.Path)}
	}
	if r.ContentLength > limit {
		return nil, tooLarge(strconv.FormatInt(r.ContentLength, 10))
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(s.timeout)); err != nil {
		return nil, fmt.Errorf("control: setting read deadline: %w", err)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge("more than " + strconv.FormatInt(limit, 10))
	case errors.As(err, &ne) && ne.Timeout():
		return nil, &Error{Code: CodeRequestTimeout, Message: fmt.Sprintf(
			"control: request body not received within %v (%d bytes came)", s.timeout, len(body))}
	case err != nil:
		return nil, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("control: reading request body: %v", err)}
	}
	return body, nil
}

// writeError writes err as the protocol's Error, with the HTTP status of
// its code.
func writeError(w http.ResponseWriter, err error) {
	e := errorOf(err)
	status, ok := httpStatus[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// errorOf returns err as the protocol's Error: itself if it is one, else
// with the code that fits it.
func errorOf(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var re *host.RemoteError
	code := CodeFailed
	switch {
	case errors.Is(err, config.ErrInvalid):
		code = CodeInvalidConfig
	case errors.Is(err, host.ErrNotConnected):
		code = CodeNotConnected
	case errors.Is(err, host.ErrAlreadyConnected):
		code = CodeAlreadyConnected
	case errors.As(err, &re):
		code = CodeRemote
	case errors.Is(err, context.DeadlineExceeded):
		code = CodeTimeout
	case errors.Is(err, host.ErrBadHandle), errors.Is(err, host.ErrBadAddr), errors.Is(err, trust.ErrBadPeerID), errors.Is(err, trust.ErrBadLabel):
		code = CodeBadRequest
	}
	return &Error{Code: code, Message: err.Error()}
}

// httpStatus is the HTTP status that carries each error code. Clients go
// by the code; the status is for anyone reading the traffic.
var httpStatus = map[string]int{
	CodeBadRequest:       http.StatusBadRequest,
	CodeUnknownPeer:      http.StatusNotFound,
	CodeNotConnected:     http.StatusConflict,
	CodeAlreadyConnected: http.StatusConflict,
	CodeConflict:         http.StatusConflict,
	CodeInvalidConfig:    http.StatusUnprocessableEntity,
	CodeRemote:           http.StatusBadGateway,
	CodeTimeout:          http.StatusGatewayTimeout,
	CodeTooLarge:         http.StatusRequestEntityTooLarge,
	CodeRequestTimeout:   http.StatusRequestTimeout,
	CodeBusy:             http.StatusServiceUnavailable,
	CodeFailed:           http.StatusInternalServerError,
}

// decode decodes a request's JSON body into v.
func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return &Error{Code: CodeBadRequest, Message: fmt.Sprintf("malformed request: %v", err)}
	}
	return nil
}

// resolve finds a trusted peer by PeerID or label.
func (s *Server) resolve(name string) (trust.PeerID, error) {
	id, perr := trust.ParsePeerID(name)
	if perr == nil {
		return id, nil
	}
	for _, p := range s.backend.Peers() {
		if p.Label == name {
			return p.ID, nil
		}
	}
	msg := fmt.Sprintf("no trusted peer labelled %q (and it is not a PeerID)", name)
	if strings.HasPrefix(name, trust.PeerIDPrefix) {
		// Most likely a PeerID with a typo: say what is wrong with it.
		msg = fmt.Sprintf("no trusted peer labelled %q, and it is not a valid PeerID: %v", name, perr)
	}
	return trust.PeerID{}, &Error{Code: CodeUnknownPeer, Message: msg}
}

// done is the answer of a request that has nothing to return.
var done = struct{}{}

func (s *Server) status(*http.Request, []byte) (any, error) { return s.backend.Status(), nil }

func (s *Server) plugins(*http.Request, []byte) (any, error) { return s.backend.Plugins(), nil }

func (s *Server) peers(*http.Request, []byte) (any, error) {
	peers := s.backend.Peers()
	out := make([]Peer, len(peers))
	for i, p := range peers {
		out[i] = Peer{ID: p.ID.String(), Label: p.Label, AddedAt: p.AddedAt, Connected: p.Connected, Addr: p.Addr, Source: p.Source}
		if p.Connected && p.Suite != 0 {
			out[i].Suite, out[i].PeerMaxMessageSize = p.Suite.String(), p.PeerMaxMessageSize
		}
	}
	return out, nil
}

func (s *Server) trust(r *http.Request, body []byte) (any, error) {
	var req TrustRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.Relabel {
		id, err := s.resolve(req.ID)
		if err != nil {
			return nil, err
		}
		if _, ok := s.trusted(id); !ok {
			return nil, &Error{Code: CodeUnknownPeer, Message: fmt.Sprintf("%s is not trusted; trust add it instead", id)}
		}
		return done, s.backend.Trust(id, req.Label)
	}
	id, err := trust.ParsePeerID(req.ID)
	if err != nil {
		return nil, err
	}
	if label, ok := s.trusted(id); ok && label != req.Label {
		return nil, &Error{Code: CodeConflict, Message: fmt.Sprintf(
			"%s is already trusted as %q; nothing changed. To relabel it: peernet-host trust relabel %s %s", id, label, id, req.Label)}
	}
	for _, p := range s.backend.Peers() {
		if p.Label == req.Label && p.ID != id {
			return nil, &Error{Code: CodeConflict, Message: fmt.Sprintf(
				"the label %q already names %s; nothing changed. Pick another label, or relabel that peer first", req.Label, p.ID)}
		}
	}
	return done, s.backend.Trust(id, req.Label)
}

// trusted returns the label of id and whether it is trusted.
func (s *Server) trusted(id trust.PeerID) (string, bool) {
	for _, p := range s.backend.Peers() {
		if p.ID == id {
			return p.Label, true
		}
	}
	return "", false
}

func (s *Server) untrust(r *http.Request, _ []byte) (any, error) {
	id, err := s.resolve(r.URL.Query().Get("peer"))
	if err != nil {
		return nil, err
	}
	return done, s.backend.Untrust(id)
}

func (s *Server) connect(r *http.Request, body []byte) (any, error) {
	var req ConnectRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	id, err := s.resolve(req.Peer)
	if err != nil {
		return nil, err
	}
	return done, s.backend.Connect(r.Context(), id, req.Addr)
}

func (s *Server) disconnect(r *http.Request, body []byte) (any, error) {
	var req DisconnectRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	id, err := s.resolve(req.Peer)
	if err != nil {
		return nil, err
	}
	return done, s.backend.Disconnect(id)
}

// callArgs decodes a call or send request and resolves its peer. The
// returned context carries the request's timeout, if it has one.
func (s *Server) callArgs(r *http.Request, body []byte) (CallRequest, trust.PeerID, context.Context, context.CancelFunc, error) {
	var req CallRequest
	if err := decode(body, &req); err != nil {
		return req, trust.PeerID{}, nil, nil, err
	}
	id, err := s.resolve(req.Peer)
	if err != nil {
		return req, id, nil, nil, err
	}
	ctx, cancel := r.Context(), context.CancelFunc(func() {})
	if req.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.Timeout))
	}
	return req, id, ctx, cancel, nil
}

func (s *Server) call(r *http.Request, body []byte) (any, error) {
	req, id, ctx, cancel, err := s.callArgs(r, body)
	if err != nil {
		return nil, err
	}
	defer cancel()
	res, err := s.backend.Call(ctx, id, req.Handle, req.Args)
	if err != nil {
		return nil, CallError("call", req, err)
	}
	return CallResponse{Result: res}, nil
}

func (s *Server) send(r *http.Request, body []byte) (any, error) {
	req, id, ctx, cancel, err := s.callArgs(r, body)
	if err != nil {
		return nil, err
	}
	defer cancel()
	if err := s.backend.Send(ctx, id, req.Handle, req.Args); err != nil {
		return nil, CallError("send", req, err)
	}
	return done, nil
}

// CallError is the Error for a call or send (verb) of req that failed with
// err, one of host.Node.Call's outcomes. Its Status is the outcome's name
// and its Message reads "call HANDLE on PEER: STATUS", then ": " and the
// text that came with it, if any, with PEER as the request named it. A
// passed deadline and a cancellation carry no text: however the deadline
// was noticed (before sending, while waiting, or by the peer), the event
// reads the same. The client builds the same Error when its own deadline
// passes first.
func CallError(verb string, req CallRequest, err error) *Error {
	code := errorOf(err).Code
	st, msg := rpc.Split(err)
	if st == rpc.StatusDeadlineExceeded || st == rpc.StatusCanceled {
		msg = ""
	}
	if st == rpc.StatusDeadlineExceeded {
		code = CodeTimeout // also when the peer noticed it
	}
	text := fmt.Sprintf("%s %s on %s: %s", verb, req.Handle, req.Peer, st)
	if msg != "" {
		text += ": " + msg
	}
	return &Error{Code: code, Status: st.String(), Message: text}
}

func (s *Server) reload(r *http.Request, _ []byte) (any, error) {
	resp, err := s.backend.Reload(r.Context())
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *Server) revoke(r *http.Request, body []byte) (any, error) {
	var req RevokeRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := s.backend.Revoke(req.Plugin, req.Handle); err != nil {
		// Revoke fails only for a plugin or handle that is not there.
		return nil, &Error{Code: CodeBadRequest, Message: err.Error()}
	}
	return done, nil
}
