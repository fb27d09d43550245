package pluginsdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/peernet/peernet/pluginsdk/internal/channel"
	"github.com/peernet/peernet/rpc"
)

// hostClient is the Host a plugin gets: calls to the node over the call
// channel. When the node serves no callbacks every method fails with
// ErrUnavailable.
type hostClient struct {
	ch      *channel.Channel
	enabled bool
}

func (h *hostClient) Call(ctx context.Context, peer PeerID, handle string, args []byte) ([]byte, error) {
	if err := h.check(peer); err != nil {
		return nil, err
	}
	body, err := h.ch.Call(ctx, peer, handle, args)
	return body, name(err, peer, handle)
}

func (h *hostClient) Send(ctx context.Context, peer PeerID, handle string, args []byte) error {
	if err := h.check(peer); err != nil {
		return err
	}
	return name(h.ch.Send(ctx, peer, handle, args), peer, handle)
}

func (h *hostClient) Peers(ctx context.Context) ([]PeerInfo, error) {
	if !h.enabled {
		return nil, fmt.Errorf("%w: no host callbacks", ErrUnavailable)
	}
	body, err := h.ch.Call(ctx, PeerID{}, channel.HandlePeers, nil)
	if err != nil {
		return nil, err
	}
	var list []channel.Peer
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("pluginsdk: the node listed its peers malformed: %w", err)
	}
	peers := make([]PeerInfo, 0, len(list))
	for _, p := range list {
		peers = append(peers, PeerInfo{ID: p.ID, Label: p.Label, AddedAt: p.AddedAt, Connected: p.Connected, Addr: p.Addr, Source: p.Source})
	}
	return peers, nil
}

func (h *hostClient) check(peer PeerID) error {
	switch {
	case !h.enabled:
		return fmt.Errorf("%w: no host callbacks", ErrUnavailable)
	case peer.IsZero():
		return rpc.Errorf(rpc.StatusBadRequest, "zero PeerID")
	}
	return nil
}

// name puts the call's peer and handle into the node's answer, so that it
// reads "call HANDLE on PEER: STATUS: …" and a handler that returns it
// answers handler_error rather than the callback's status (rpc.Outcome).
func name(err error, peer PeerID, handle string) error {
	var e *rpc.Error
	if errors.As(err, &e) && e.Handle == "" {
		named := *e
		named.Peer, named.Handle = peer, handle
		return &named
	}
	return err
}
