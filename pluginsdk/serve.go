package pluginsdk

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

const (
	// shutdownGrace is how long Serve lets running handlers finish after
	// SIGTERM or SIGINT before it stops anyway.
	shutdownGrace = 3 * time.Second
	// flushGrace bounds the graceful stop of the gRPC server after the calls
	// have drained. It never completes by itself, since go-plugin's broker
	// and stdio streams stay open; the bound gives gRPC's writer time to put
	// the last replies and the streams' trailers on the socket before Stop
	// closes it.
	flushGrace = 250 * time.Millisecond
)

// Serve serves the plugin described by cfg to the node that started this
// process, and blocks until the node stops it or the process receives
// SIGTERM or SIGINT. On a signal, new calls are refused, running calls get up
// to a few seconds to finish, and Serve returns; main should then release
// what it holds and return (exit status 0). Serve logs and exits with status
// 1 when cfg is invalid, and when the process was not started by a node.
// Call it once, from main, before anything writes to stdout.
func Serve(cfg Config) {
	log := cfg.Logger
	if log == nil {
		level := hclog.LevelFromString(os.Getenv(LogLevelEnv))
		if level == hclog.NoLevel {
			level = hclog.Info
		}
		log = hclog.New(&hclog.LoggerOptions{
			Name:       cfg.Name,
			Level:      level,
			Output:     os.Stderr,
			JSONFormat: true,
		})
		cfg.Logger = log
	}
	srv, err := newServer(cfg)
	if err != nil {
		log.Error("invalid plugin configuration", "error", err)
		os.Exit(1)
	}
	defer srv.close()

	var (
		mu sync.Mutex
		gs *grpc.Server
	)
	newGRPCServer := func(opts []grpc.ServerOption) *grpc.Server {
		opts = append(opts, grpc.MaxRecvMsgSize(maxRecvMsgSize))
		mu.Lock()
		defer mu.Unlock()
		gs = grpc.NewServer(opts...)
		return gs
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case sig := <-sigs:
			log.Info("stopping", "signal", sig.String())
			if !srv.drain(shutdownGrace) {
				log.Warn("stopping with handlers still running", "grace", shutdownGrace)
			}
			srv.endSessions()
			mu.Lock()
			s := gs
			mu.Unlock()
			if s == nil {
				os.Exit(0)
			}
			stopped := make(chan struct{})
			go func() {
				s.GracefulStop()
				close(stopped)
			}()
			t := time.NewTimer(flushGrace)
			defer t.Stop()
			select {
			case <-stopped:
			case <-t.C:
				s.Stop() // makes plugin.Serve return
				<-stopped
			}
		case <-ctx.Done():
		}
	}()

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake(),
		Plugins:         plugin.PluginSet{PluginName: &grpcPlugin{srv: srv}},
		GRPCServer:      newGRPCServer,
		Logger:          log,
	})
	cancel()
	wg.Wait()
}
