package plugintest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/peernet/peernet/pluginsdk"
)

// Host is a fake node for the plugin's callbacks: it records every callback
// and answers with the funcs, which may be set before the plugin starts. Its
// methods are safe for concurrent use.
type Host struct {
	// CallFunc answers Call; nil answers pluginsdk.ErrNotConnected.
	CallFunc func(ctx context.Context, peer pluginsdk.PeerID, handle string, args []byte) ([]byte, error)
	// SendFunc answers Send; nil accepts every send.
	SendFunc func(ctx context.Context, peer pluginsdk.PeerID, handle string, args []byte) error
	// PeersFunc answers Peers; nil answers no peers.
	PeersFunc func(ctx context.Context) ([]pluginsdk.PeerInfo, error)

	mu    sync.Mutex
	calls []HostCall
}

// HostCall is one recorded callback.
type HostCall struct {
	Method string // "call", "send" or "peers"
	Peer   pluginsdk.PeerID
	Handle string
	Args   []byte
}

var _ pluginsdk.Host = (*Host)(nil)

// Calls returns the callbacks so far, oldest first; the caller owns the
// slice.
func (h *Host) Calls() []HostCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

func (h *Host) record(c HostCall) {
	h.mu.Lock()
	h.calls = append(h.calls, c)
	h.mu.Unlock()
}

func (h *Host) Call(ctx context.Context, peer pluginsdk.PeerID, handle string, args []byte) ([]byte, error) {
	h.record(HostCall{Method: "call", Peer: peer, Handle: handle, Args: args})
	if h.CallFunc == nil {
		return nil, fmt.Errorf("%w: %s", pluginsdk.ErrNotConnected, peer)
	}
	return h.CallFunc(ctx, peer, handle, args)
}

func (h *Host) Send(ctx context.Context, peer pluginsdk.PeerID, handle string, args []byte) error {
	h.record(HostCall{Method: "send", Peer: peer, Handle: handle, Args: args})
	if h.SendFunc == nil {
		return nil
	}
	return h.SendFunc(ctx, peer, handle, args)
}

func (h *Host) Peers(ctx context.Context) ([]pluginsdk.PeerInfo, error) {
	h.record(HostCall{Method: "peers"})
	if h.PeersFunc == nil {
		return nil, nil
	}
	return h.PeersFunc(ctx)
}
