package pluginsdk

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/peernet/peernet/pluginsdk/pluginpb"
	"github.com/peernet/peernet/trust"
)

// hostClient is the Host a plugin gets: the node's Host service on a
// go-plugin broker connection. With no connection every method fails with
// ErrUnavailable.
type hostClient struct {
	conn *grpc.ClientConn
	c    pluginpb.HostClient
}

func (h *hostClient) Call(ctx context.Context, peer PeerID, handle string, args []byte) ([]byte, error) {
	if h.c == nil {
		return nil, fmt.Errorf("%w: no host callbacks", ErrUnavailable)
	}
	key := peer.Bytes()
	resp, err := h.c.Call(ctx, &pluginpb.HostCallRequest{Peer: key[:], Handle: handle, Args: args})
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if err := statusError(resp.Status, resp.Error); err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (h *hostClient) Send(ctx context.Context, peer PeerID, handle string, args []byte) error {
	if h.c == nil {
		return fmt.Errorf("%w: no host callbacks", ErrUnavailable)
	}
	key := peer.Bytes()
	resp, err := h.c.Send(ctx, &pluginpb.HostSendRequest{Peer: key[:], Handle: handle, Args: args})
	if err != nil {
		return transportError(ctx, err)
	}
	return statusError(resp.Status, resp.Error)
}

func (h *hostClient) Peers(ctx context.Context) ([]PeerInfo, error) {
	if h.c == nil {
		return nil, fmt.Errorf("%w: no host callbacks", ErrUnavailable)
	}
	resp, err := h.c.Peers(ctx, &pluginpb.PeersRequest{})
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if err := statusError(resp.Status, resp.Error); err != nil {
		return nil, err
	}
	peers := make([]PeerInfo, 0, len(resp.Peers))
	for _, p := range resp.Peers {
		id, err := trust.PeerIDFromBytes(p.Id)
		if err != nil {
			return nil, fmt.Errorf("pluginsdk: host listed a malformed peer: %w", err)
		}
		peers = append(peers, PeerInfo{ID: id, Label: p.Label, Connected: p.Connected, Addr: p.Addr})
	}
	return peers, nil
}

// transportError maps a failed callback RPC: the context's own error when it
// ended, ErrUnavailable otherwise.
func transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// statusError maps the status of a callback to the error the plugin sees.
func statusError(st pluginpb.Status, msg string) error {
	var sentinel error
	switch st {
	case pluginpb.Status_STATUS_OK:
		return nil
	case pluginpb.Status_STATUS_HANDLER_ERROR:
		return &HandlerError{Msg: msg}
	case pluginpb.Status_STATUS_DEADLINE_EXCEEDED:
		return context.DeadlineExceeded
	case pluginpb.Status_STATUS_CANCELED:
		return context.Canceled
	case pluginpb.Status_STATUS_HANDLER_CRASHED:
		sentinel = ErrHandlerCrashed
	case pluginpb.Status_STATUS_NO_SUCH_HANDLE:
		sentinel = ErrNoSuchHandle
	case pluginpb.Status_STATUS_TOO_LARGE:
		sentinel = ErrTooLarge
	case pluginpb.Status_STATUS_UNAVAILABLE:
		sentinel = ErrUnavailable
	case pluginpb.Status_STATUS_NOT_CONNECTED:
		sentinel = ErrNotConnected
	case pluginpb.Status_STATUS_FORBIDDEN:
		sentinel = ErrForbidden
	case pluginpb.Status_STATUS_OVERLOADED:
		sentinel = ErrOverloaded
	case pluginpb.Status_STATUS_BAD_REQUEST:
		sentinel = ErrBadRequest
	default:
		return fmt.Errorf("pluginsdk: host callback failed (%v): %s", st, msg)
	}
	if msg == "" {
		return sentinel
	}
	return fmt.Errorf("%w: %s", sentinel, msg)
}
