package pluginclient

import (
	"context"
	"strings"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/pluginpb"
	"github.com/peernet/peernet/rpc"
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
		return &pluginpb.HostCallResponse{Status: uint32(rpc.StatusBadRequest), Error: err.Error()}, nil
	}
	body, err := s.host.Call(ctx, peer, req.Handle, req.Args)
	st, msg := rpc.Split(err)
	if st != rpc.StatusOK {
		body = nil
	}
	return &pluginpb.HostCallResponse{Status: uint32(st), Body: body, Error: cleanText(msg)}, nil
}

func (s *hostServer) Send(ctx context.Context, req *pluginpb.HostSendRequest) (*pluginpb.HostSendResponse, error) {
	peer, err := trust.PeerIDFromBytes(req.Peer)
	if err != nil {
		return &pluginpb.HostSendResponse{Status: uint32(rpc.StatusBadRequest), Error: err.Error()}, nil
	}
	st, msg := rpc.Split(s.host.Send(ctx, peer, req.Handle, req.Args))
	return &pluginpb.HostSendResponse{Status: uint32(st), Error: cleanText(msg)}, nil
}

func (s *hostServer) Peers(ctx context.Context, _ *pluginpb.PeersRequest) (*pluginpb.PeersResponse, error) {
	peers, err := s.host.Peers(ctx)
	if st, msg := rpc.Split(err); st != rpc.StatusOK {
		return &pluginpb.PeersResponse{Status: uint32(st), Error: cleanText(msg)}, nil
	}
	resp := &pluginpb.PeersResponse{Peers: make([]*pluginpb.PeerInfo, 0, len(peers))}
	for _, p := range peers {
		id := p.ID.Bytes()
		resp.Peers = append(resp.Peers, &pluginpb.PeerInfo{
			Id:        id[:],
			Label:     strings.ToValidUTF8(p.Label, "\uFFFD"),
			AddedAt:   p.AddedAt.UnixNano(),
			Connected: p.Connected,
			Addr:      strings.ToValidUTF8(p.Addr, "\uFFFD"),
			Source:    strings.ToValidUTF8(p.Source, "\uFFFD"),
		})
	}
	return resp, nil
}

// cleanText makes s fit a protobuf string field: valid UTF-8, which the
// encoder requires.
func cleanText(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
