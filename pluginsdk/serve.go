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

	"github.com/peernet/peernet/pluginsdk/internal/channel"
)

// shutdownGrace is how long a stopping plugin lets running handlers finish
// before it stops anyway.
const shutdownGrace = 3 * time.Second

// Serve serves the plugin described by cfg to the node that started this
// process, and blocks until the node stops it or the process receives
// SIGTERM or SIGINT. On a signal, the node is told to send no new calls,
// running calls get up to a few seconds to finish, and Serve returns; main
// should then release what it holds and return (exit status 0). Serve logs
// and exits with status 1 when cfg is invalid, and when the process was not
// started by a node. Call it once, from main, before anything writes to
// stdout.
//
// Calls travel on the call channel the node passes as descriptor 3; the
// go-plugin handshake and gRPC server exist for go-plugin's process
// management (stdio forwarding, shutdown), not for calls.
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
	handshake := Handshake()
	if os.Getenv(handshake.MagicCookieKey) != handshake.MagicCookieValue {
		serveGoPlugin(log, nil) // explains that this is a plugin, and exits
	}
	conn, err := channel.Conn(os.NewFile(channel.FD, "peernet-channel"))
	if err != nil {
		log.Error("no call channel from the node", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var (
		mu    sync.Mutex
		gs    *grpc.Server
		ended bool
	)
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.serve(ctx, conn); err != nil {
			log.Debug("call channel ended", "error", err)
		}
		// The node is gone or done with this plugin: end go-plugin's
		// server too, so that plugin.Serve returns.
		mu.Lock()
		ended = true
		s := gs
		mu.Unlock()
		if s == nil {
			os.Exit(0)
		}
		s.Stop()
	}()
	serveGoPlugin(log, func(opts []grpc.ServerOption) *grpc.Server {
		mu.Lock()
		defer mu.Unlock()
		gs = grpc.NewServer(opts...)
		if ended {
			gs.Stop()
		}
		return gs
	})
	stop()
	<-served
}

// serveGoPlugin runs go-plugin's side of the process: the handshake line,
// stdio forwarding and the controller that lets the node stop the process.
// With newServer nil it only checks that a node started the process.
func serveGoPlugin(log hclog.Logger, newServer func([]grpc.ServerOption) *grpc.Server) {
	if newServer == nil {
		newServer = plugin.DefaultGRPCServer
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake(),
		Plugins:         plugin.PluginSet{PluginName: goPlugin{}},
		GRPCServer:      newServer,
		Logger:          log,
	})
}

// goPlugin is the go-plugin plugin of a PeerNet plugin: it serves nothing,
// since calls travel on the call channel.
type goPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (goPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return nil }

func (goPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return goPlugin{}, nil
}
