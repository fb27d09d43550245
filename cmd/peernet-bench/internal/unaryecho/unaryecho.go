// Package unaryecho implements the anchor of peernet-bench's plugin section:
// the plainest go-plugin gRPC plugin, one unary Echo RPC per call, carried
// by the same transport a PeerNet plugin uses (plaintext gRPC on a Unix
// socket). The plugin process (package unaryechoplugin) serves it; the
// benchmark dials it. Both halves are here so that they cannot disagree.
package unaryecho

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// PluginName is the plugin's name in go-plugin's plugin set, on both sides.
const PluginName = "unaryecho"

// Method is the full gRPC name of the one RPC. Its request and response are
// google.protobuf.BytesValue, as an ordinary protobuf plugin would use.
const Method = "/peernetbench.UnaryEcho/Echo"

// Handshake is the go-plugin handshake of the anchor; the cookie only keeps
// the binary from being run by hand.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  1,
		MagicCookieKey:   "PEERNET_BENCH_UNARYECHO",
		MagicCookieValue: "anchor",
	}
}

// Plugin is both halves of the go-plugin plugin: GRPCServer registers the
// Echo service in the plugin process, GRPCClient hands the bench the
// *grpc.ClientConn to invoke Method on.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
}

var _ plugin.GRPCPlugin = Plugin{}

// echoService is the service's HandlerType: the MethodDesc does the work.
type echoService interface{}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: "peernetbench.UnaryEcho",
	HandlerType: (*echoService)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			if ic == nil {
				return in, nil
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{FullMethod: Method}, func(context.Context, any) (any, error) { return in, nil })
		},
	}},
	Metadata: "peernet-bench (hand-written, no .proto)",
}

// GRPCServer registers the Echo service.
func (Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&serviceDesc, struct{}{})
	return nil
}

// GRPCClient returns conn itself: the bench invokes Method on it.
func (Plugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return conn, nil
}

// Echo makes one Echo call on conn and returns the echoed bytes, which the
// caller owns. It blocks until the reply and is safe for concurrent use.
func Echo(ctx context.Context, conn *grpc.ClientConn, p []byte) ([]byte, error) {
	out := new(wrapperspb.BytesValue)
	if err := conn.Invoke(ctx, Method, &wrapperspb.BytesValue{Value: p}, out); err != nil {
		return nil, err
	}
	return out.Value, nil
}
