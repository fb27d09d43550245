package daemon

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
	"syscall"
	"time"

	"github.com/peernet/peernet/config"
	"github.com/peernet/peernet/control"
	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/trust"
)

// controlServer serves the control protocol on a Unix socket.
type controlServer struct {
	d    *Daemon
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	path string
}

// listenControl creates the control socket at path, mode 0600. A socket
// left by a crashed daemon is replaced; the data-dir lock the node holds
// already guarantees no live daemon uses it.
func listenControl(d *Daemon, path string) (*controlServer, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale control socket: %w", err)
	}
	// The umask keeps the socket private from the moment it exists.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("creating control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("securing control socket: %w", err)
	}
	s := &controlServer{d: d, ln: ln, done: make(chan struct{}), path: path}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+control.PathStatus, s.status)
	mux.HandleFunc("GET "+control.PathPeers, s.peers)
	mux.HandleFunc("GET "+control.PathTrust, s.peers)
	mux.HandleFunc("POST "+control.PathTrust, s.trust)
	mux.HandleFunc("DELETE "+control.PathTrust, s.untrust)
	mux.HandleFunc("POST "+control.PathConnect, s.connect)
	mux.HandleFunc("POST "+control.PathDisconnect, s.disconnect)
	mux.HandleFunc("POST "+control.PathCall, s.call)
	mux.HandleFunc("POST "+control.PathSend, s.send)
	mux.HandleFunc("GET "+control.PathPlugins, s.plugins)
	mux.HandleFunc("POST "+control.PathReload, s.reload)
	mux.HandleFunc("POST "+control.PathRevoke, s.revoke)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	return s, nil
}

func (s *controlServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
	<-s.done
	os.Remove(s.path)
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, code string, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(control.Error{Code: code, Message: err.Error()})
}

// failErr answers with the code that fits err.
func failErr(w http.ResponseWriter, err error) {
	var re *host.RemoteError
	var ce *config.DiagError
	switch {
	case errors.As(err, &ce):
		fail(w, http.StatusUnprocessableEntity, control.CodeInvalidConfig, err)
	case errors.Is(err, host.ErrNotConnected):
		fail(w, http.StatusConflict, control.CodeNotConnected, err)
	case errors.Is(err, host.ErrAlreadyConnected):
		fail(w, http.StatusConflict, control.CodeAlreadyConnected, err)
	case errors.As(err, &re):
		fail(w, http.StatusBadGateway, control.CodeRemote, err)
	case errors.Is(err, context.DeadlineExceeded):
		fail(w, http.StatusGatewayTimeout, control.CodeTimeout, err)
	case errors.Is(err, host.ErrBadHandle), errors.Is(err, host.ErrBadAddr), errors.Is(err, trust.ErrBadPeerID), errors.Is(err, trust.ErrBadLabel):
		fail(w, http.StatusBadRequest, control.CodeBadRequest, err)
	default:
		fail(w, http.StatusInternalServerError, control.CodeFailed, err)
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(v); err != nil {
		fail(w, http.StatusBadRequest, control.CodeBadRequest, fmt.Errorf("malformed request: %w", err))
		return false
	}
	return true
}

// resolve finds a trusted peer by PeerID or label.
func (s *controlServer) resolve(w http.ResponseWriter, name string) (trust.PeerID, bool) {
	id, perr := trust.ParsePeerID(name)
	if perr == nil {
		return id, true
	}
	for _, p := range s.d.node.Peers() {
		if p.Label == name {
			return p.ID, true
		}
	}
	err := fmt.Errorf("no trusted peer labelled %q (and it is not a PeerID)", name)
	if strings.HasPrefix(name, trust.PeerIDPrefix) {
		// Most likely a PeerID with a typo: say what is wrong with it.
		err = fmt.Errorf("no trusted peer labelled %q, and it is not a valid PeerID: %w", name, perr)
	}
	fail(w, http.StatusNotFound, control.CodeUnknownPeer, err)
	return trust.PeerID{}, false
}

func (s *controlServer) status(w http.ResponseWriter, _ *http.Request) {
	n := s.d.node
	st := control.Status{
		Ready:    s.d.Ready(),
		Name:     n.Name(),
		ID:       n.Identity().String(),
		Listen:   n.Addr().String(),
		Uptime:   control.Duration(s.d.Uptime()),
		Inflight: n.Inflight(),
		Plugins:  s.d.sup.Status(),
	}
	for _, p := range n.Peers() {
		st.Peers++
		if p.Connected {
			st.Connected++
		}
	}
	reply(w, st)
}

func (s *controlServer) peers(w http.ResponseWriter, _ *http.Request) {
	peers := s.d.node.Peers()
	out := make([]control.Peer, len(peers))
	for i, p := range peers {
		out[i] = control.Peer{ID: p.ID.String(), Label: p.Label, AddedAt: p.AddedAt, Connected: p.Connected, Addr: p.Addr, Source: p.Source}
	}
	reply(w, out)
}

func (s *controlServer) trust(w http.ResponseWriter, r *http.Request) {
	var req control.TrustRequest
	if !decode(w, r, &req) {
		return
	}
	id, err := trust.ParsePeerID(req.ID)
	if err != nil {
		fail(w, http.StatusBadRequest, control.CodeBadRequest, err)
		return
	}
	if err := s.d.node.Trust(id, req.Label); err != nil {
		failErr(w, err)
		return
	}
	reply(w, struct{}{})
}

func (s *controlServer) untrust(w http.ResponseWriter, r *http.Request) {
	id, ok := s.resolve(w, r.URL.Query().Get("peer"))
	if !ok {
		return
	}
	if err := s.d.node.Untrust(id); err != nil {
		failErr(w, err)
		return
	}
	reply(w, struct{}{})
}

func (s *controlServer) connect(w http.ResponseWriter, r *http.Request) {
	var req control.ConnectRequest
	if !decode(w, r, &req) {
		return
	}
	id, ok := s.resolve(w, req.Peer)
	if !ok {
		return
	}
	if err := s.d.node.Connect(r.Context(), id, req.Addr); err != nil {
		failErr(w, err)
		return
	}
	reply(w, struct{}{})
}

func (s *controlServer) disconnect(w http.ResponseWriter, r *http.Request) {
	var req control.DisconnectRequest
	if !decode(w, r, &req) {
		return
	}
	id, ok := s.resolve(w, req.Peer)
	if !ok {
		return
	}
	if err := s.d.node.Disconnect(id); err != nil {
		failErr(w, err)
		return
	}
	reply(w, struct{}{})
}

func (s *controlServer) callArgs(w http.ResponseWriter, r *http.Request) (control.CallRequest, trust.PeerID, context.Context, context.CancelFunc, bool) {
	var req control.CallRequest
	if !decode(w, r, &req) {
		return req, trust.PeerID{}, nil, nil, false
	}
	id, ok := s.resolve(w, req.Peer)
	if !ok {
		return req, id, nil, nil, false
	}
	ctx, cancel := r.Context(), context.CancelFunc(func() {})
	if req.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.Timeout))
	}
	return req, id, ctx, cancel, true
}

func (s *controlServer) call(w http.ResponseWriter, r *http.Request) {
	req, id, ctx, cancel, ok := s.callArgs(w, r)
	if !ok {
		return
	}
	defer cancel()
	res, err := s.d.node.Call(ctx, id, req.Handle, req.Args)
	if err != nil {
		failErr(w, err)
		return
	}
	reply(w, control.CallResponse{Result: res})
}

func (s *controlServer) send(w http.ResponseWriter, r *http.Request) {
	req, id, ctx, cancel, ok := s.callArgs(w, r)
	if !ok {
		return
	}
	defer cancel()
	if err := s.d.node.Send(ctx, id, req.Handle, req.Args); err != nil {
		failErr(w, err)
		return
	}
	reply(w, struct{}{})
}

func (s *controlServer) plugins(w http.ResponseWriter, _ *http.Request) {
	reply(w, s.d.sup.Status())
}

func (s *controlServer) reload(w http.ResponseWriter, r *http.Request) {
	sum, err := s.d.Reload(r.Context())
	if sum == nil {
		failErr(w, err)
		return
	}
	resp := control.ReloadResponse{Peers: sum.Peers, Plugins: sum.Plugins, RestartNeeded: sum.RestartNeeded}
	if err != nil {
		resp.Warning = err.Error()
	}
	reply(w, resp)
}

func (s *controlServer) revoke(w http.ResponseWriter, r *http.Request) {
	var req control.RevokeRequest
	if !decode(w, r, &req) {
		return
	}
	var err error
	if req.Handle == "" {
		err = s.d.sup.Remove(req.Plugin)
	} else {
		err = s.d.sup.RevokeHandle(req.Plugin, req.Handle)
	}
	if err != nil {
		fail(w, http.StatusNotFound, control.CodeBadRequest, err)
		return
	}
	reply(w, struct{}{})
}
