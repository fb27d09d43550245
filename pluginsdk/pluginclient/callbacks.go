package pluginclient

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/internal/channel"
	"github.com/peernet/peernet/rpc"
)

// callback serves one of the plugin's calls to the node: a call or send to
// a peer on the plugin's behalf, or, addressed to the zero peer, a list of
// the node's peers.
func (c *Client) callback(ctx context.Context, req *rpc.Request) ([]byte, error) {
	if c.host == nil {
		return nil, fmt.Errorf("%w: no host callbacks", pluginsdk.ErrUnavailable)
	}
	if req.Caller.IsZero() {
		if req.Handle != channel.HandlePeers {
			return nil, rpc.Errorf(rpc.StatusBadRequest, "zero PeerID")
		}
		return c.peers(ctx)
	}
	if req.Kind == rpc.KindSend {
		return nil, c.host.Send(ctx, req.Caller, req.Handle, req.Args)
	}
	return c.host.Call(ctx, req.Caller, req.Handle, req.Args)
}

func (c *Client) peers(ctx context.Context) ([]byte, error) {
	peers, err := c.host.Peers(ctx)
	if err != nil {
		return nil, err
	}
	list := make([]channel.Peer, 0, len(peers))
	for _, p := range peers {
		list = append(list, channel.Peer{ID: p.ID, Label: p.Label, Connected: p.Connected, Addr: p.Addr, AddedAt: p.AddedAt, Source: p.Source})
	}
	return json.Marshal(list)
}

// callbackOutcome passes the outcome of a callback to the plugin as it is:
// a peer's "forbidden" stays forbidden, as the plugin's own errors do.
func callbackOutcome(_ context.Context, err error) (rpc.Status, string) { return rpc.Split(err) }
