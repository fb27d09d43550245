package pluginsdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/pluginsdk/internal/channel"
	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/wire"
)

// server is the plugin's end of the call channel.
type server struct {
	cfg     Config
	handles []string
	log     hclog.Logger

	mu         sync.Mutex
	ch         *channel.Channel
	configured bool // configure was called
	ready      bool // configure succeeded
}

func newServer(cfg Config) (*server, error) {
	if cfg.Name == "" {
		return nil, errors.New("pluginsdk: Config.Name is empty")
	}
	if len(cfg.Handlers) == 0 {
		return nil, fmt.Errorf("pluginsdk: plugin %q has no handlers", cfg.Name)
	}
	handles := make([]string, 0, len(cfg.Handlers))
	for h, fn := range cfg.Handlers {
		if err := wire.CheckHandle(h); err != nil {
			return nil, fmt.Errorf("pluginsdk: plugin %q: invalid handle name: %w", cfg.Name, err)
		}
		if fn == nil {
			return nil, fmt.Errorf("pluginsdk: plugin %q: handler for %q is nil", cfg.Name, h)
		}
		handles = append(handles, h)
	}
	slices.Sort(handles)
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &server{cfg: cfg, handles: handles, log: log}, nil
}

// ServeConn serves cfg over conn, the plugin's end of a call channel
// (docs/plugin-protocol.md), until the node closes or retires
// the channel, or ctx ends. When ctx ends, the plugin retires the channel
// itself: the node sends no new calls, running handlers get up to a few
// seconds to finish and be answered, and then the channel is closed.
// ServeConn returns once every handler has returned; the error says why
// the channel ended when that was not a retirement.
//
// Serve calls it on the descriptor the node passes; package plugintest
// calls it in-process.
func ServeConn(ctx context.Context, conn net.Conn, cfg Config) error {
	s, err := newServer(cfg)
	if err != nil {
		_ = conn.Close()
		return err
	}
	return s.serve(ctx, conn)
}

func (s *server) serve(ctx context.Context, conn net.Conn) error {
	ch := channel.New(conn, channel.Config{
		Name: "node",
		// What the node sends is bounded by the largest limit it may set;
		// configure lowers the limit on what the plugin's handlers return.
		MaxMessageSize: MaxMessageSizeLimit,
		Handler:        s.handle,
		Lost:           lostNode,
		Log:            s.log,
	})
	s.mu.Lock()
	s.ch = ch
	s.mu.Unlock()
	select {
	case <-ch.Done():
	case <-ctx.Done():
		ch.Retire()
		t := time.NewTimer(shutdownGrace)
		select {
		case <-ch.Done():
		case <-t.C:
			s.log.Warn("stopping with handlers still running", "grace", shutdownGrace)
		}
		t.Stop()
	}
	ch.Close(errors.New("plugin stopped"))
	ch.Wait()
	if err := ch.Err(); !ch.Retired() && ctx.Err() == nil {
		return err
	}
	return nil
}

// lostNode is what a callback gets once the channel has ended.
func lostNode(cause error) error {
	return rpc.Errorf(rpc.StatusUnavailable, "connection to the node lost: "+cause.Error())
}

// handle serves one call or send from the node.
func (s *server) handle(ctx context.Context, req *Request) ([]byte, error) {
	if req.Caller.IsZero() {
		switch req.Handle {
		case channel.HandleDescribe:
			return json.Marshal(channel.Description{Name: s.cfg.Name, Version: s.cfg.Version, Handles: s.handles, Protocol: ProtocolVersion})
		case channel.HandleConfigure:
			return nil, s.configure(ctx, req.Args)
		}
	}
	s.mu.Lock()
	ready := s.ready
	s.mu.Unlock()
	if !ready {
		return nil, rpc.Errorf(rpc.StatusUnavailable, "plugin is not configured")
	}
	h := s.cfg.Handlers[req.Handle]
	if h == nil {
		return nil, rpc.Errorf(rpc.StatusNoSuchHandle, fmt.Sprintf("plugin %q has no handle %q", s.cfg.Name, req.Handle))
	}
	return h.Handle(ctx, req)
}

func (s *server) configure(ctx context.Context, args []byte) error {
	var c channel.Configuration
	if err := json.Unmarshal(args, &c); err != nil {
		return rpc.Errorf(rpc.StatusBadRequest, "configuration: "+err.Error())
	}
	s.mu.Lock()
	if s.configured {
		s.mu.Unlock()
		return rpc.Errorf(rpc.StatusBadRequest, "already configured")
	}
	s.configured = true
	ch := s.ch
	s.mu.Unlock()
	ch.SetMaxMessageSize(c.MaxMessageSize)
	host := &hostClient{ch: ch, enabled: c.Callbacks}
	if s.cfg.Configure != nil {
		if err := s.cfg.Configure(ctx, host, c.Config); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
	return nil
}
