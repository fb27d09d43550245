// Command unaryecho is the benchmark anchor for pluginclient: the plainest
// go-plugin gRPC plugin, one unary Echo RPC per call, over the same
// transport (plaintext gRPC on a Unix socket) as a PeerNet plugin.
package main

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/peernet/peernet/pluginsdk"
)

// Method is the full gRPC method name the benchmark invokes.
const Method = "/peernet.bench.UnaryEcho/Echo"

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugin.HandshakeConfig{ProtocolVersion: pluginsdk.ProtocolVersion, MagicCookieKey: pluginsdk.MagicCookieKey, MagicCookieValue: pluginsdk.MagicCookieValue},
		Plugins:         plugin.PluginSet{"unaryecho": echoPlugin{}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}

type echoServer interface{}

type echoPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (echoPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "peernet.bench.UnaryEcho",
		HandlerType: (*echoServer)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Echo",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := new(wrapperspb.BytesValue)
				if err := dec(in); err != nil {
					return nil, err
				}
				return in, nil
			},
		}},
	}, struct{}{})
	return nil
}

func (echoPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return c, nil
}
