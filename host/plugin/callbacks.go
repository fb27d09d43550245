package plugin

import (
	"context"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/trust"
)

// nodeHost answers plugins' callbacks with the node: a plugin calls and
// sends to peers as the node itself.
type nodeHost struct{ n *host.Node }

func (h *nodeHost) Call(ctx context.Context, peer trust.PeerID, handle string, args []byte) ([]byte, error) {
	return h.n.Call(ctx, peer, handle, args)
}

func (h *nodeHost) Send(ctx context.Context, peer trust.PeerID, handle string, args []byte) error {
	return h.n.Send(ctx, peer, handle, args)
}

func (h *nodeHost) Peers(context.Context) ([]pluginsdk.PeerInfo, error) { return h.n.Peers(), nil }
