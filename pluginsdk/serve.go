package pluginsdk

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

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
// Serve prints go-plugin's handshake line on stdout and then serves the
// call channel the node passes as descriptor 3 (docs/plugin-protocol.md);
// there is no gRPC server and no socket on disk.
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
	if os.Getenv(MagicCookieKey) != MagicCookieValue {
		fmt.Fprintf(os.Stderr, "This binary is a PeerNet plugin (%s). It is started by peernet-host, as\nconfigured in a plugin block of its configuration file, not run directly.\n", cfg.Name)
		os.Exit(1)
	}
	conn, err := channel.Conn(os.NewFile(channel.FD, "peernet-channel"))
	if err != nil {
		log.Error("no call channel from the node", "error", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if _, err := fmt.Fprintln(os.Stdout, HandshakeLine); err != nil {
		log.Error("writing the handshake line", "error", err)
		os.Exit(1)
	}
	if err := srv.serve(ctx, conn); err != nil {
		log.Debug("call channel ended", "error", err)
	}
}

// HandshakeLine is the line a plugin prints on stdout once it is ready for
// the node, in go-plugin's format: its core protocol version 1, this
// protocol's version, and a network address that PeerNet does not use
// (calls travel on the call channel), with go-plugin's protocol name.
var HandshakeLine = fmt.Sprintf("1|%d|unix|-|grpc|", ProtocolVersion)
