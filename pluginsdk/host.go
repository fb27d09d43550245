package pluginsdk

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/peernet/peernet/pluginsdk/pluginpb"
	"github.com/peernet/peernet/rpc"
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
	if err := callbackError(resp.Status, resp.Error, peer, handle); err != nil {
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
	return callbackError(resp.Status, resp.Error, peer, handle)
}

func (h *hostClient) Peers(ctx context.Context) ([]PeerInfo, error) {
	if h.c == nil {
		return nil, fmt.Errorf("%w: no host callbacks", ErrUnavailable)
	}
	resp, err := h.c.Peers(ctx, &pluginpb.PeersRequest{})
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if err := callbackError(resp.Status, resp.Error, PeerID{}, ""); err != nil {
		return nil, err
	}
	peers := make([]PeerInfo, 0, len(resp.Peers))
	for _, p := range resp.Peers {
		id, err := trust.PeerIDFromBytes(p.Id)
		if err != nil {
			return nil, fmt.Errorf("pluginsdk: host listed a malformed peer: %w", err)
		}
		peers = append(peers, PeerInfo{ID: id, Label: p.Label, AddedAt: time.Unix(0, p.AddedAt), Connected: p.Connected, Addr: p.Addr, Source: p.Source})
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

// callbackError is the error for a callback's status: nil for ok, the
// context's own error for a deadline or cancellation (so that errors.Is
// against ctx.Err() holds), else an *Error carrying the node's message.
func callbackError(st uint32, msg string, peer PeerID, handle string) error {
	s := rpc.Status(st)
	switch s {
	case rpc.StatusOK:
		return nil
	case rpc.StatusDeadlineExceeded, rpc.StatusCanceled:
		if msg == "" {
			return s.Err()
		}
	}
	return &Error{Status: s, Message: msg, Peer: peer, Handle: handle}
}
