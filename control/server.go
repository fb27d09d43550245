package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/netutil"

	"github.com/peernet/peernet/config"
	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/trust"
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

// MaxConns bounds the requests a Server serves at once. The client opens a
// connection per request; connections beyond the bound wait in the
// socket's backlog until one finishes.
const MaxConns = 64

// readHeaderTimeout bounds how long a client may take to send a request's
// headers.
const readHeaderTimeout = 10 * time.Second

// Server serves the control protocol on a Unix socket for one Backend.
type Server struct {
	backend Backend
	path    string
	ln      net.Listener
	srv     *http.Server
	served  chan struct{} // closed when srv.Serve has returned

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
type route struct {
	method, path string
	serve        func(s *Server, r *http.Request) (any, error)
}

// routes is every request of the protocol.
var routes = []route{
	{http.MethodGet, PathStatus, (*Server).status},
	{http.MethodGet, PathPeers, (*Server).peers},
	{http.MethodGet, PathTrust, (*Server).peers},
	{http.MethodPost, PathTrust, (*Server).trust},
	{http.MethodDelete, PathTrust, (*Server).untrust},
	{http.MethodPost, PathConnect, (*Server).connect},
	{http.MethodPost, PathDisconnect, (*Server).disconnect},
	{http.MethodPost, PathCall, (*Server).call},
	{http.MethodPost, PathSend, (*Server).send},
	{http.MethodGet, PathPlugins, (*Server).plugins},
	{http.MethodPost, PathReload, (*Server).reload},
	{http.MethodPost, PathRevoke, (*Server).revoke},
}

// Listen creates the control socket at path, mode 0600, and serves backend
// on it in the background until Shutdown. A file already at path is
// replaced, as a socket a crashed node left behind: the caller must hold
// what guarantees that no live server uses path (the node's data-dir lock).
func Listen(path string, backend Backend) (*Server, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control: removing stale control socket: %w", err)
	}
	// The umask keeps the socket private from the moment it exists.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control: creating control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: securing control socket: %w", err)
	}
	s := &Server{backend: backend, path: path, ln: ln, served: make(chan struct{})}
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.method+" "+rt.path, s.handler(rt))
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout}
	go func() {
		defer close(s.served)
		s.srv.Serve(netutil.LimitListener(ln, MaxConns))
	}()
	return s, nil
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

// handler adapts rt to net/http: it decodes nothing itself, counts the
// request for Shutdown, and writes rt's answer or error as JSON.
func (s *Server) handler(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			writeJSON(w, http.StatusServiceUnavailable, Error{Code: CodeFailed, Message: "control: node is stopping"})
			return
		}
		s.handlers.Add(1)
		s.mu.Unlock()
		defer s.handlers.Done()

		out, err := rt.serve(s, r)
		if err != nil {
			e := errorOf(err)
			status, ok := httpStatus[e.Code]
			if !ok {
				status = http.StatusInternalServerError
			}
			writeJSON(w, status, e)
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
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
	CodeFailed:           http.StatusInternalServerError,
}

// decode reads the request's JSON body into v.
func decode(r *http.Request, v any) error {
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBodySize)).Decode(v); err != nil {
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

func (s *Server) status(*http.Request) (any, error) { return s.backend.Status(), nil }

func (s *Server) plugins(*http.Request) (any, error) { return s.backend.Plugins(), nil }

func (s *Server) peers(*http.Request) (any, error) {
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

func (s *Server) trust(r *http.Request) (any, error) {
	var req TrustRequest
	if err := decode(r, &req); err != nil {
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

func (s *Server) untrust(r *http.Request) (any, error) {
	id, err := s.resolve(r.URL.Query().Get("peer"))
	if err != nil {
		return nil, err
	}
	return done, s.backend.Untrust(id)
}

func (s *Server) connect(r *http.Request) (any, error) {
	var req ConnectRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	id, err := s.resolve(req.Peer)
	if err != nil {
		return nil, err
	}
	return done, s.backend.Connect(r.Context(), id, req.Addr)
}

func (s *Server) disconnect(r *http.Request) (any, error) {
	var req DisconnectRequest
	if err := decode(r, &req); err != nil {
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
func (s *Server) callArgs(r *http.Request) (CallRequest, trust.PeerID, context.Context, context.CancelFunc, error) {
	var req CallRequest
	if err := decode(r, &req); err != nil {
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

func (s *Server) call(r *http.Request) (any, error) {
	req, id, ctx, cancel, err := s.callArgs(r)
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

func (s *Server) send(r *http.Request) (any, error) {
	req, id, ctx, cancel, err := s.callArgs(r)
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

func (s *Server) reload(r *http.Request) (any, error) {
	resp, err := s.backend.Reload(r.Context())
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *Server) revoke(r *http.Request) (any, error) {
	var req RevokeRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := s.backend.Revoke(req.Plugin, req.Handle); err != nil {
		// Revoke fails only for a plugin or handle that is not there.
		return nil, &Error{Code: CodeBadRequest, Message: err.Error()}
	}
	return done, nil
}
