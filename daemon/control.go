package daemon

import (
	"context"

	"github.com/peernet/peernet/control"
	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/host/plugin"
)

// backend is what the daemon gives its control server: the node's own
// methods (Peers, Trust, Untrust, Connect, Disconnect, Call, Send) and the rest of
// control.Backend from the daemon.
type backend struct {
	*host.Node
	d *Daemon
}

var _ control.Backend = backend{}

func (b backend) Status() control.Status {
	n := b.d.node
	st := control.Status{
		Ready:    b.d.Ready(),
		Version:  Version(),
		Name:     n.Name(),
		ID:       n.Identity().String(),
		Listen:   n.Addr().String(),
		Uptime:   control.Duration(b.d.Uptime()),
		Inflight: n.Inflight(),
		Plugins:  b.Plugins(),
	}
	for _, p := range n.Peers() {
		st.Peers++
		if p.Connected {
			st.Connected++
		}
	}
	return st
}

func (b backend) Plugins() []control.PluginStatus {
	ps := b.d.sup.Status()
	out := make([]control.PluginStatus, len(ps))
	for i, p := range ps {
		out[i] = pluginStatus(p)
	}
	return out
}

// pluginStatus is the control protocol's view of a plugin's status.
func pluginStatus(p plugin.Status) control.PluginStatus {
	return control.PluginStatus{
		Name:       p.Name,
		Version:    p.Version,
		State:      string(p.State),
		Generation: p.Generation,
		Pid:        p.Pid,
		Restarts:   p.Restarts,
		Handles:    p.Handles,
		InFlight:   p.InFlight,
		LastError:  p.LastError,
		Path:       p.Path,
		SHA256:     p.SHA256,
	}
}

func (b backend) Reload(ctx context.Context) (control.ReloadResponse, error) {
	sum, err := b.d.Reload(ctx)
	if sum == nil {
		return control.ReloadResponse{}, err
	}
	resp := control.ReloadResponse{Peers: sum.Peers, Plugins: sum.Plugins, RestartNeeded: sum.RestartNeeded}
	if err != nil {
		resp.Warning = err.Error()
	}
	return resp, nil
}

func (b backend) Revoke(plugin, handle string) error {
	if handle == "" {
		return b.d.sup.Remove(plugin)
	}
	return b.d.sup.RevokeHandle(plugin, handle)
}
