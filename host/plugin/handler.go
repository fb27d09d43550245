package plugin

import (
	"context"
	"errors"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/pluginsdk/pluginclient"
)

// handler is the host.Handler of every exposed handle of one plugin: it
// routes each request to the plugin's serving generation at the moment the
// request arrives.
type handler struct{ m *managed }

func (h *handler) Handle(ctx context.Context, req *host.Request) ([]byte, error) {
	for {
		g, err := h.m.serving()
		if err != nil {
			return nil, err
		}
		var res []byte
		if req.Kind == host.KindSend {
			err = g.client.Send(ctx, req)
		} else {
			res, err = g.client.Call(ctx, req)
		}
		// A generation being swapped out refuses calls it has not
		// taken; they go to its successor.
		if errors.Is(err, pluginclient.ErrStopping) {
			if next, _ := h.m.serving(); next != nil && next != g {
				continue
			}
		}
		// The supervisor stops a crashed generation's client as soon as
		// the process is gone, which can beat the client's own crash
		// detection: the calls it ends were in flight in the crash all
		// the same.
		if errors.Is(err, pluginclient.ErrClosed) && g.crashed.Load() {
			err = pluginclient.ErrCrashed
		}
		return res, err
	}
}
