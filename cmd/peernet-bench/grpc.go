package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The gRPC baseline is one unary method, /peernetbench.Echo/Echo, served
// from a hand-written ServiceDesc with rawCodec on both sides: messages are
// []byte passed through as they are, so no protobuf is generated, marshalled
// or parsed. That makes it a stricter baseline than an ordinary
// protobuf-based gRPC service: it pays HTTP/2 and gRPC framing only.
const grpcEchoMethod = "/peernetbench.Echo/Echo"

// rawCodec is a gRPC codec whose messages are *[]byte (or []byte on
// marshalling) carried unchanged. gRPC hands Unmarshal a buffer of its own
// that it does not reuse, so Unmarshal may keep it.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case *[]byte:
		return *m, nil
	case []byte:
		return m, nil
	}
	return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*m = data
	return nil
}

func (rawCodec) Name() string { return "raw" }

// echoService is the HandlerType of the service: it has no methods, as the
// ServiceDesc's handler does all the work.
type echoService interface{}

var echoServiceDesc = grpc.ServiceDesc{
	ServiceName: "peernetbench.Echo",
	HandlerType: (*echoService)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			echo := func(context.Context, any) (any, error) { return &in, nil }
			if interceptor == nil {
				return echo(ctx, &in)
			}
			return interceptor(ctx, &in, &grpc.UnaryServerInfo{FullMethod: grpcEchoMethod}, echo)
		},
	}},
	Metadata: "peernet-bench (hand-written, no .proto)",
}

type grpcClient struct{ cc *grpc.ClientConn }

func (c grpcClient) echo(ctx context.Context, p []byte) ([]byte, error) {
	var out []byte
	if err := c.cc.Invoke(ctx, grpcEchoMethod, &p, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func dialGRPC(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
	)
}

func newGRPCSystem() (system, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return system{}, err
	}
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	srv.RegisterService(&echoServiceDesc, struct{}{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	addr := ln.Addr().String()
	cc, err := dialGRPC(addr)
	if err != nil {
		srv.Stop()
		<-served
		return system{}, err
	}
	return system{
		name:   "gRPC",
		client: grpcClient{cc},
		connect: func(ctx context.Context) (time.Duration, error) {
			// NewClient connects lazily: the first call dials, sets up
			// HTTP/2 and waits for the connection to be ready.
			p := payload(smallPayload)
			t0 := time.Now()
			cc, err := dialGRPC(addr)
			if err != nil {
				return 0, err
			}
			defer cc.Close()
			r, err := grpcClient{cc}.echo(ctx, p)
			d := time.Since(t0)
			if err != nil {
				return 0, err
			}
			return d, checkEcho(r, p)
		},
		close: func() {
			cc.Close()
			srv.Stop()
			<-served
		},
	}, nil
}
