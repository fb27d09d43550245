package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/pluginclient"
)

// handler is the host.Handler of every exposed handle of one plugin: it
// routes each request to the plugin's serving generation at the moment the
// request arrives.
type handler struct{ m *managed }

func (h *handler) Handle(ctx context.Context, req *host.Request) ([]byte, error) {
	preq := &pluginsdk.Request{Caller: req.Caller, Handle: req.Handle, Args: req.Args, Kind: pluginsdk.KindCall}
	if req.Kind == host.KindSend {
		preq.Kind = pluginsdk.KindSend
	}
	for {
		g, err := h.m.serving()
		if err != nil {
			return nil, err
		}
		var res []byte
		if req.Kind == host.KindSend {
			err = g.client.Send(ctx, preq)
		} else {
			res, err = g.client.Call(ctx, preq)
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
		return res, h.m.hostErr(err)
	}
}

// hostErr maps a plugin client's error to what the caller should see.
func (m *managed) hostErr(err error) error {
	var he *pluginclient.HandlerError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &he):
		return errors.New(he.Msg)
	case errors.Is(err, pluginclient.ErrCrashed):
		return fmt.Errorf("%w: plugin %s died during the call", host.ErrHandlerCrashed, m.name)
	case errors.Is(err, pluginclient.ErrHandlerCrashed):
		return fmt.Errorf("%w: %v", host.ErrHandlerCrashed, err)
	case errors.Is(err, pluginclient.ErrNoSuchHandle):
		return fmt.Errorf("%w: plugin %s does not serve it", host.ErrNoSuchHandle, m.name)
	case errors.Is(err, pluginclient.ErrTooLarge):
		return fmt.Errorf("%w: %v", host.ErrTooLarge, err)
	case errors.Is(err, pluginclient.ErrUnavailable), errors.Is(err, pluginclient.ErrClosed), errors.Is(err, pluginclient.ErrStopping):
		return fmt.Errorf("%w: plugin %s is stopping", host.ErrUnavailable, m.name)
	}
	return err
}
