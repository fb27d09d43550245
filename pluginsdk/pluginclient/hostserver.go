package pluginclient

import (
	"context"
	"errors"
	"strings"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/pluginpb"
	"github.com/peernet/peernet/trust"
)

// hostServer serves a pluginsdk.Host to the plugin on a broker connection.
type hostServer struct {
	pluginpb.UnimplementedHostServer
	host pluginsdk.Host
	log  hclog.Logger
}

func (s *hostServer) newServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.MaxRecvMsgSize(pluginsdk.MaxMessageSizeLimit+recvSlack))
	gs := grpc.NewServer(opts...)
	pluginpb.RegisterHostServer(gs, s)
	return gs
}

func (s *hostServer) Call(ctx context.Context, req *pluginpb.HostCallRequest) (*pluginpb.HostCallResponse, error) {
	peer, err := trust.PeerIDFromBytes(req.Peer)
	if err != nil {
		return &pluginpb.HostCallResponse{Status: pluginpb.Status_STATUS_BAD_REQUEST, Error: err.Error()}, nil
	}
	body, err := s.host.Call(ctx, peer, req.Handle, req.Args)
	st, msg := statusOf(err)
	if st != pluginpb.Status_STATUS_OK {
		body = nil
	}
	return &pluginpb.HostCallResponse{Status: st, Body: body, Error: msg}, nil
}

func (s *hostServer) Send(ctx context.Context, req *pluginpb.HostSendRequest) (*pluginpb.HostSendResponse, error) {
	peer, err := trust.PeerIDFromBytes(req.Peer)
	if err != nil {
		return &pluginpb.HostSendResponse{Status: pluginpb.Status_STATUS_BAD_REQUEST, Error: err.Error()}, nil
	}
	st, msg := statusOf(s.host.Send(ctx, peer, req.Handle, req.Args))
	return &pluginpb.HostSendResponse{Status: st, Error: msg}, nil
}

func (s *hostServer) Peers(ctx context.Context, _ *pluginpb.PeersRequest) (*pluginpb.PeersResponse, error) {
	peers, err := s.host.Peers(ctx)
	if st, msg := statusOf(err); st != pluginpb.Status_STATUS_OK {
		return &pluginpb.PeersResponse{Status: st, Error: msg}, nil
	}
	resp := &pluginpb.PeersResponse{Status: pluginpb.Status_STATUS_OK, Peers: make([]*pluginpb.PeerInfo, 0, len(peers))}
	for _, p := range peers {
		id := p.ID.Bytes()
		resp.Peers = append(resp.Peers, &pluginpb.PeerInfo{
			Id:        id[:],
			Label:     strings.ToValidUTF8(p.Label, "\uFFFD"),
			Connected: p.Connected,
			Addr:      strings.ToValidUTF8(p.Addr, "\uFFFD"),
		})
	}
	return resp, nil
}

// statusOf maps the error of a Host method to the status the plugin sees;
// pluginsdk maps it back to the same sentinel.
func statusOf(err error) (pluginpb.Status, string) {
	if err == nil {
		return pluginpb.Status_STATUS_OK, ""
	}
	msg := strings.ToValidUTF8(err.Error(), "\uFFFD")
	var he *pluginsdk.HandlerError
	if errors.As(err, &he) {
		return pluginpb.Status_STATUS_HANDLER_ERROR, strings.ToValidUTF8(he.Msg, "\uFFFD")
	}
	for _, m := range []struct {
		err error
		st  pluginpb.Status
	}{
		{context.DeadlineExceeded, pluginpb.Status_STATUS_DEADLINE_EXCEEDED},
		{context.Canceled, pluginpb.Status_STATUS_CANCELED},
		{pluginsdk.ErrNotConnected, pluginpb.Status_STATUS_NOT_CONNECTED},
		{pluginsdk.ErrNoSuchHandle, pluginpb.Status_STATUS_NO_SUCH_HANDLE},
		{pluginsdk.ErrForbidden, pluginpb.Status_STATUS_FORBIDDEN},
		{pluginsdk.ErrHandlerCrashed, pluginpb.Status_STATUS_HANDLER_CRASHED},
		{pluginsdk.ErrOverloaded, pluginpb.Status_STATUS_OVERLOADED},
		{pluginsdk.ErrTooLarge, pluginpb.Status_STATUS_TOO_LARGE},
		{pluginsdk.ErrUnavailable, pluginpb.Status_STATUS_UNAVAILABLE},
		{pluginsdk.ErrBadRequest, pluginpb.Status_STATUS_BAD_REQUEST},
	} {
		if errors.Is(err, m.err) {
			return m.st, msg
		}
	}
	return pluginpb.Status_STATUS_ERROR, msg
}
