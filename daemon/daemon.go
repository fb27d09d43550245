// Package daemon implements what peernet-host run does: a node, its plugins
// and its control socket, built from one configuration file and brought in
// line with that file again on reload without dropping connections.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/config"
	"github.com/peernet/peernet/control"
	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/host/plugin"
	"github.com/peernet/peernet/telemetry"
	"github.com/peernet/peernet/trust"
)

// Daemon is a running node with its plugins and control socket.
type Daemon struct {
	path    string // the configuration file, re-read by Reload
	log     hclog.Logger
	started time.Time

	node    *host.Node
	sup     *plugin.Supervisor
	ctl     *control.Server
	metrics *metricsServer // nil without a telemetry block

	mu  sync.Mutex // serialises Reload and Shutdown; guards cfg
	cfg *config.File

	// ready is set once the first plugin start has finished, whether every
	// plugin came up or not; until then the control socket already
	// answers, but plugin handles may not be exposed yet.
	ready atomic.Bool

	closeOnce sync.Once
}

// Start starts the node that cfg describes, its declared peers and
// plugins, its control socket and its metrics endpoint. It does not read
// the file again: cfg is what the caller loaded, and Start keeps it, so the
// caller must not change it afterwards. Reload re-reads the file at
// cfg.Path. ctx bounds the first start of the plugins.
//
// A plugin that fails to start does not stop the node: it is reported in
// the error returned with the running Daemon, and the supervisor keeps
// restarting it per its policy. Any other failure stops everything started
// and returns a nil Daemon.
func Start(ctx context.Context, cfg *config.File, log hclog.Logger) (*Daemon, error) {
	d := &Daemon{path: cfg.Path, log: log, cfg: cfg, started: time.Now()}
	if err := d.start(); err != nil {
		// Nothing has been served yet, so there is nothing to wait for.
		stopNow, cancel := context.WithCancel(context.Background())
		cancel()
		d.stop(stopNow)
		return nil, err
	}
	// The plugins' handles answer "unavailable" until each plugin is up;
	// peers are served from now on, while the plugins start.
	if err := d.sup.Declare(cfg.Plugins); err == nil {
		d.node.Ready()
	}
	pluginErr := d.sup.Apply(ctx, cfg.Plugins)
	d.node.Ready()
	d.ready.Store(true)
	log.Info("peernet-host running", "id", d.node.Identity(), "listen", d.node.Addr(), "config", d.path)
	return d, pluginErr
}

// start brings up the node, the supervisor, the control socket and the
// metrics endpoint, in that order, stopping at the first failure; stop
// undoes whatever it got to.
func (d *Daemon) start() error {
	cfg := d.cfg
	hc := cfg.HostConfig(d.log)
	if cfg.Discovery.MDNS {
		hc.MDNS = &host.MDNSConfig{Interfaces: cfg.Discovery.Interfaces}
	}
	var metrics *telemetry.Metrics
	if cfg.Telemetry.MetricsListen != "" {
		metrics = telemetry.New()
		hc.Observer = metrics
	}
	// Declared peers are trusted before discovery starts, and requests
	// wait until the plugins' handles are declared: a peer that reconnects
	// at once to a restarted node gets "unavailable", not "no such handle".
	for _, p := range cfg.Peers {
		hc.Peers = append(hc.Peers, host.Peer{ID: p.ID, Label: p.Label, Addr: p.Address})
	}
	hc.HoldRequests = true
	var err error
	if d.node, err = host.Start(hc); err != nil {
		return err
	}
	d.sup, err = plugin.NewSupervisor(plugin.SupervisorConfig{
		Node:   d.node,
		Logger: d.log.Named("plugins"),
	})
	if err != nil {
		return err
	}
	ctlCfg := control.Config{MaxMessageSize: cfg.Node.MaxMessageSize}
	if d.ctl, err = control.Listen(control.SocketPath(cfg.Node.DataDir), backend{Node: d.node, d: d}, ctlCfg); err != nil {
		return err
	}
	if metrics != nil {
		metrics.Watch(d.node, d.sup)
		if d.metrics, err = serveMetrics(cfg.Telemetry.MetricsListen, metrics); err != nil {
			return err
		}
		d.log.Info("serving metrics", "addr", d.metrics.addr())
	}
	return nil
}

// stop stops what start started, in reverse order, skipping what it did
// not get to: the control socket and the metrics endpoint close, calls in
// flight get until ctx ends, then the node closes and the plugins stop.
func (d *Daemon) stop(ctx context.Context) error {
	var err error
	if d.ctl != nil {
		d.ctl.Shutdown(ctx)
	}
	if d.metrics != nil {
		d.metrics.close()
	}
	if d.node != nil {
		if e := d.node.Shutdown(ctx); e != nil && !errors.Is(e, context.DeadlineExceeded) {
			err = e
		}
	}
	if d.sup != nil {
		d.sup.Close()
	}
	return err
}

// Node returns the daemon's node.
func (d *Daemon) Node() *host.Node { return d.node }

// Plugins returns the daemon's plugin supervisor.
func (d *Daemon) Plugins() *plugin.Supervisor { return d.sup }

// Reload re-reads the configuration file and applies the difference: peers
// are trusted, re-labelled, re-addressed or untrusted, plugins start, stop
// or swap, handles are re-exposed. Connections to peers that did not change
// stay up. An invalid file changes nothing and is returned as the config
// error. Settings of the node block that need a restart (name, data dir,
// listen address, limits) are reported in the summary, not applied.
func (d *Daemon) Reload(ctx context.Context) (*ReloadSummary, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cfg, err := config.Load(d.path)
	if err != nil {
		return nil, err
	}
	sum := &ReloadSummary{}
	if cfg.Node != d.cfg.Node {
		sum.RestartNeeded = append(sum.RestartNeeded, "node block changed; restart to apply it")
	}
	if !slices.Equal(cfg.Discovery.Interfaces, d.cfg.Discovery.Interfaces) || cfg.Discovery.MDNS != d.cfg.Discovery.MDNS {
		sum.RestartNeeded = append(sum.RestartNeeded, "discovery block changed; restart to apply it")
	}
	if cfg.Telemetry != d.cfg.Telemetry {
		sum.RestartNeeded = append(sum.RestartNeeded, "telemetry block changed; restart to apply it")
	}
	// What the plugins change is measured against what runs, not against
	// the file last read: a failed swap, a failed plugin or a revoke
	// leaves the two apart.
	if sum.Plugins, err = d.sup.Changes(cfg.Plugins); err != nil {
		return nil, err
	}
	if err := d.applyPeers(d.cfg.Peers, cfg.Peers); err != nil {
		return nil, err
	}
	sum.Peers = peerChanges(d.cfg.Peers, cfg.Peers)
	err = d.sup.Apply(ctx, cfg.Plugins)
	d.cfg = cfg
	d.log.Info("configuration reloaded", "peers", sum.Peers, "plugins", sum.Plugins, "restart_needed", sum.RestartNeeded)
	return sum, err
}

// ReloadSummary says what a reload changed.
type ReloadSummary struct {
	Peers         []string `json:"peers"`          // e.g. "+beta", "-gamma", "~beta (address)"
	Plugins       []string `json:"plugins"`        // e.g. "+kv", "-old", "~echo (binary)"; see plugin.Supervisor.Changes
	RestartNeeded []string `json:"restart_needed"` // settings that take a restart
}

// applyPeers moves the trust list and dial addresses from the peers declared
// in before to those in after. Peers trusted by other means (the CLI) are
// left alone.
func (d *Daemon) applyPeers(before, after []config.Peer) error {
	keep := map[trust.PeerID]bool{}
	for _, p := range after {
		keep[p.ID] = true
		if err := d.node.Trust(p.ID, p.Label); err != nil {
			return fmt.Errorf("trusting peer %q: %w", p.Label, err)
		}
		if p.Address != "" {
			if err := d.node.SetAddr(p.ID, p.Address, "config"); err != nil {
				return fmt.Errorf("peer %q: %w", p.Label, err)
			}
		}
	}
	for _, p := range before {
		if !keep[p.ID] {
			if err := d.node.Untrust(p.ID); err != nil {
				return fmt.Errorf("untrusting peer %q: %w", p.Label, err)
			}
		}
	}
	return nil
}

func peerChanges(before, after []config.Peer) []string {
	old := map[trust.PeerID]config.Peer{}
	for _, p := range before {
		old[p.ID] = p
	}
	var out []string
	for _, p := range after {
		o, ok := old[p.ID]
		switch {
		case !ok:
			out = append(out, "+"+p.Label)
		case o != p:
			out = append(out, "~"+p.Label)
		}
		delete(old, p.ID)
	}
	for _, p := range old {
		out = append(out, "-"+p.Label)
	}
	sort.Strings(out)
	return out
}

// Shutdown stops the daemon: the control socket closes, new inbound calls
// are refused, and calls in flight, through the control socket or from
// peers, get until the configured shutdown grace (or ctx, if sooner) to
// finish; then the node closes and the plugins stop. Safe to call more
// than once.
func (d *Daemon) Shutdown(ctx context.Context) error {
	var err error
	d.closeOnce.Do(func() {
		d.mu.Lock()
		grace := d.cfg.Node.ShutdownGrace
		d.mu.Unlock()
		ctx, cancel := context.WithTimeout(ctx, grace)
		defer cancel()
		err = d.stop(ctx)
		d.log.Info("peernet-host stopped")
	})
	return err
}

// Ready reports whether the daemon has finished starting: its plugins have
// been launched once, and those that came up serve their handles. The
// control socket answers before that, so that "peernet-host status" can show
// a slow plugin starting.
func (d *Daemon) Ready() bool { return d.ready.Load() }

// Uptime is how long the daemon has run.
func (d *Daemon) Uptime() time.Duration { return time.Since(d.started).Round(time.Second) }
