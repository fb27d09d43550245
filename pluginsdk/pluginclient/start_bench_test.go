package pluginclient_test

import (
	"bytes"
	"context"
	"os/exec"
	"runtime"
	"slices"
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

// BenchmarkStartToFirstReply times, interleaved in one run, each way of
// starting a plugin from the start of the launch to the first answered
// 64-byte echo (stopping is not timed):
//
//	go-plugin       the anchor: a plain go-plugin gRPC plugin (plaintext,
//	                Unix socket), NewClient, Dispense, one unary call
//	go-plugin-mtls  the same with AutoMTLS, as PeerNet launched before
//	launch          pluginclient.Launch of plugins/echo with its digest:
//	                read, hashed and sealed into a memfd, then executed
//	restart         pluginclient.Launch of the copy the first launch
//	                pinned, as the supervisor restarts an unchanged
//	                generation: nothing read, nothing hashed
//
// It reports each one's median (p50-ms) and the ratios of PeerNet's to the
// anchor's medians.
//
//	go test -run='^$' -bench=BenchmarkStartToFirstReply -benchtime=40x ./pluginsdk/pluginclient/
func BenchmarkStartToFirstReply(b *testing.B) {
	echoPath, echoSum := plugintest.Build(b, echoPlugin)
	anchorPath, _ := plugintest.Build(b, unaryEchoPlugin)
	dir := plugintest.SocketDir(b) // the anchor's gRPC socket
	payload := bytes.Repeat([]byte("x"), 64)
	ctx := context.Background()

	var pins pluginclient.PinCache
	held, err := pins.Pin(echoPath, echoSum)
	if err != nil {
		b.Fatal(err)
	}
	defer held.Release()

	launch := func(pin *pluginclient.Pinned) func() (func(), error) {
		return func() (func(), error) {
			c, err := pluginclient.Launch(ctx, pluginclient.LaunchConfig{Name: "echo", Path: echoPath, SHA256: echoSum, Pinned: pin})
			if err != nil {
				return nil, err
			}
			stop := func() { c.Stop(ctx) }
			if _, err := c.Call(ctx, &pluginsdk.Request{Handle: "echo", Args: payload}); err != nil {
				return stop, err
			}
			return stop, nil
		}
	}
	anchor := func(mtls bool) func() (func(), error) {
		return func() (func(), error) {
			gp := plugin.NewClient(&plugin.ClientConfig{
				HandshakeConfig:  anchorHandshake,
				Plugins:          plugin.PluginSet{"unaryecho": unaryPlugin{}},
				Cmd:              exec.Command(anchorPath),
				AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
				AutoMTLS:         mtls,
				SkipHostEnv:      true,
				UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: dir},
				Logger:           hclog.NewNullLogger(),
			})
			rpc, err := gp.Client()
			if err != nil {
				return gp.Kill, err
			}
			raw, err := rpc.Dispense("unaryecho")
			if err != nil {
				return gp.Kill, err
			}
			conn := raw.(*grpc.ClientConn)
			return gp.Kill, conn.Invoke(ctx, unaryEchoMethod, wrapperspb.Bytes(payload), new(wrapperspb.BytesValue))
		}
	}
	kinds := []struct {
		name  string
		start func() (func(), error)
	}{
		{"go-plugin", anchor(false)},
		{"go-plugin-mtls", anchor(true)},
		{"launch", launch(nil)},
		{"restart", launch(held)},
	}

	times := make([][]time.Duration, len(kinds))
	b.ResetTimer()
	for range b.N {
		for k, kind := range kinds {
			b.StopTimer()
			runtime.GC()
			b.StartTimer()
			t0 := time.Now()
			stop, err := kind.start()
			d := time.Since(t0)
			b.StopTimer()
			if stop != nil {
				stop()
			}
			if err != nil {
				b.Fatalf("%s: %v", kind.name, err)
			}
			times[k] = append(times[k], d)
			b.StartTimer()
		}
	}
	b.StopTimer()
	p50 := make([]float64, len(kinds))
	for k, kind := range kinds {
		slices.Sort(times[k])
		p50[k] = float64(times[k][len(times[k])/2]) / float64(time.Millisecond)
		b.ReportMetric(p50[k], kind.name+"-p50-ms")
	}
	b.ReportMetric(p50[2]/p50[0], "launch/go-plugin")
	b.ReportMetric(p50[3]/p50[0], "restart/go-plugin")
}
