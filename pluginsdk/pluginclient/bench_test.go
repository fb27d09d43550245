package pluginclient_test

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/pluginclient"
	"github.com/peernet/peernet/pluginsdk/plugintest"
)

const (
	echoPlugin      = "github.com/peernet/peernet/plugins/echo"
	unaryEchoPlugin = "github.com/peernet/peernet/pluginsdk/pluginclient/internal/unaryecho"
	unaryEchoMethod = "/peernet.bench.UnaryEcho/Echo"
	inFlight        = 64
)

// BenchmarkPluginCall measures a 64-byte echo through a real plugin process:
// PeerNet's multiplexed stream against the anchor, a plain go-plugin plugin
// with one unary gRPC call per echo over the same transport.
//
//	go test -run='^$' -bench=BenchmarkPluginCall -benchtime=20000x ./pluginsdk/pluginclient/
func BenchmarkPluginCall(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 64)

	streamEcho := func(b *testing.B) func(context.Context) error {
		path, sum := plugintest.Build(b, echoPlugin)
		c := launch(b, func(cfg *pluginclient.LaunchConfig) {
			cfg.Path, cfg.SHA256, cfg.Logger = path, sum, nil
		})
		req := &pluginsdk.Request{Handle: "echo", Args: payload}
		return func(ctx context.Context) error {
			_, err := c.Call(ctx, req)
			return err
		}
	}
	unaryEcho := func(b *testing.B) func(context.Context) error {
		conn := launchUnary(b)
		in := wrapperspb.Bytes(payload)
		return func(ctx context.Context) error {
			return conn.Invoke(ctx, unaryEchoMethod, in, new(wrapperspb.BytesValue))
		}
	}

	for _, impl := range []struct {
		name  string
		start func(*testing.B) func(context.Context) error
	}{{"stream", streamEcho}, {"unary", unaryEcho}} {
		b.Run(impl.name+"/sequential", func(b *testing.B) {
			echo := impl.start(b)
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if err := echo(ctx); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
		b.Run(impl.name+"/inflight64", func(b *testing.B) {
			echo := impl.start(b)
			ctx := context.Background()
			var next atomic.Int64
			var failed atomic.Value
			var wg sync.WaitGroup
			b.ResetTimer()
			t0 := time.Now()
			for range inFlight {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if err := echo(ctx); err != nil {
							failed.Store(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(t0)
			b.StopTimer()
			if err := failed.Load(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
		})
	}

	b.Run("start-to-first-call", func(b *testing.B) {
		path, sum := plugintest.Build(b, echoPlugin)
		ctx := context.Background()
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			c, err := pluginclient.Launch(ctx, pluginclient.LaunchConfig{Name: "echo", Path: path, SHA256: sum})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Call(ctx, &pluginsdk.Request{Handle: "echo", Args: payload}); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			b.StopTimer()
			if err := c.Stop(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1e3, "p50-ms")
	})
}

// launchUnary starts the anchor plugin the way Launch starts a PeerNet
// plugin (plaintext on a Unix socket, gRPC only, no inherited environment).
func launchUnary(b *testing.B) *grpc.ClientConn {
	b.Helper()
	path, _ := plugintest.Build(b, unaryEchoPlugin)
	gp := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  anchorHandshake,
		Plugins:          plugin.PluginSet{"unaryecho": unaryPlugin{}},
		Cmd:              exec.Command(path),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         false,
		SkipHostEnv:      true,
		UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: plugintest.SocketDir(b)},
		Logger:           hclog.NewNullLogger(),
	})
	b.Cleanup(gp.Kill)
	rpc, err := gp.Client()
	if err != nil {
		b.Fatal(err)
	}
	raw, err := rpc.Dispense("unaryecho")
	if err != nil {
		b.Fatal(err)
	}
	return raw.(*grpc.ClientConn)
}

type unaryPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (unaryPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return nil }

func (unaryPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return c, nil
}

// anchorHandshake is the handshake of the anchor plugin, a plain go-plugin
// gRPC plugin (internal/unaryecho).
var anchorHandshake = plugin.HandshakeConfig{
	ProtocolVersion:  pluginsdk.ProtocolVersion,
	MagicCookieKey:   pluginsdk.MagicCookieKey,
	MagicCookieValue: pluginsdk.MagicCookieValue,
}
