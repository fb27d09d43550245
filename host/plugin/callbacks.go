package plugin

import (
	"context"
	"errors"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/trust"
)

// nodeHost answers plugins' callbacks with the node: a plugin calls and
// sends to peers as the node itself.
type nodeHost struct{ n *host.Node }

func (h *nodeHost) Call(ctx context.Context, peer trust.PeerID, handle string, args []byte) ([]byte, error) {
	res, err := h.n.Call(ctx, peer, handle, args)
	return res, sdkErr(err)
}

func (h *nodeHost) Send(ctx context.Context, peer trust.PeerID, handle string, args []byte) error {
	return sdkErr(h.n.Send(ctx, peer, handle, args))
}

func (h *nodeHost) Peers(context.Context) ([]pluginsdk.PeerInfo, error) {
	peers := h.n.Peers()
	out := make([]pluginsdk.PeerInfo, len(peers))
	for i, p := range peers {
		out[i] = pluginsdk.PeerInfo{ID: p.ID, Label: p.Label, Connected: p.Connected, Addr: p.Addr}
	}
	return out, nil
}

// sdkErr maps a node error to the pluginsdk sentinel a plugin matches.
func sdkErr(err error) error {
	if err == nil {
		return nil
	}
	var re *host.RemoteError
	if errors.As(err, &re) && errors.Is(err, host.ErrHandlerError) {
		return &pluginsdk.HandlerError{Msg: re.Message}
	}
	for _, m := range []struct{ from, to error }{
		{host.ErrNotConnected, pluginsdk.ErrNotConnected},
		{host.ErrConnLost, pluginsdk.ErrNotConnected},
		{host.ErrClosed, pluginsdk.ErrUnavailable},
		{host.ErrNoSuchHandle, pluginsdk.ErrNoSuchHandle},
		{host.ErrForbidden, pluginsdk.ErrForbidden},
		{host.ErrHandlerCrashed, pluginsdk.ErrHandlerCrashed},
		{host.ErrOverloaded, pluginsdk.ErrOverloaded},
		{host.ErrTooLarge, pluginsdk.ErrTooLarge},
		{host.ErrUnavailable, pluginsdk.ErrUnavailable},
		{host.ErrBadHandle, pluginsdk.ErrBadRequest},
	} {
		if errors.Is(err, m.from) {
			return &mapped{err, m.to}
		}
	}
	return err
}

// mapped keeps the node's message while matching the pluginsdk sentinel.
type mapped struct{ err, sentinel error }

func (e *mapped) Error() string        { return e.err.Error() }
func (e *mapped) Is(target error) bool { return target == e.sentinel || errors.Is(e.err, target) }
