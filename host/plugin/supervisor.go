package plugin

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/pluginsdk/pluginclient"
)

// State is where a plugin is in its life.
type State string

const (
	StateStarting   State = "starting"   // first launch in progress
	StateRunning    State = "running"    // serving calls
	StateRestarting State = "restarting" // crashed; waiting out the backoff or relaunching
	StateFailed     State = "failed"     // crashed too often; handles answer "unavailable"
	StateStopped    State = "stopped"    // removed or supervisor closed
)

// Status is a snapshot of one plugin for operators.
type Status struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"` // as the plugin described itself
	State      State    `json:"state"`
	Generation int      `json:"generation"` // 1 for the first process, +1 per restart or swap
	Pid        int      `json:"pid"`        // 0 when no process runs
	Restarts   int      `json:"restarts"`   // restarts after crashes
	Handles    []string `json:"handles"`    // exposed handles
	InFlight   int      `json:"in_flight"`  // calls and sends in the serving generation
	LastError  string   `json:"last_error,omitempty"`
	Path       string   `json:"path"`
	SHA256     string   `json:"sha256"`
}

// SupervisorConfig configures a Supervisor.
type SupervisorConfig struct {
	// Node serves the plugins' handles and their callbacks. Required.
	Node *host.Node
	// SocketDir holds go-plugin's Unix sockets, one 0700 subdirectory per
	// plugin. It must be short (Unix socket paths are limited) and not
	// readable by others. Empty: a fresh directory under the system's
	// temporary directory, removed by Close.
	SocketDir string
	// Logger receives the supervisor's and the plugins' logs. Default: the
	// null logger.
	Logger hclog.Logger
	// StartTimeout bounds each launch. Default pluginclient.DefaultStartTimeout.
	StartTimeout time.Duration
}

// Supervisor runs a node's plugins. Its methods are safe for concurrent use.
type Supervisor struct {
	node      *host.Node
	log       hclog.Logger
	socketDir string
	ownDir    bool
	startTO   time.Duration
	callbacks *nodeHost

	ctx    context.Context // cancelled by Close: stops restart loops
	cancel context.CancelFunc
	wg     sync.WaitGroup // watchers, restart loops, draining generations

	mu      sync.Mutex // guards plugins, handles and closed; never held across a launch
	plugins map[string]*managed
	handles map[string]string // exposed handle -> plugin name
	closed  bool
}

// NewSupervisor returns a supervisor with no plugins.
func NewSupervisor(cfg SupervisorConfig) (*Supervisor, error) {
	if cfg.Node == nil {
		return nil, errors.New("plugin: SupervisorConfig.Node is required")
	}
	s := &Supervisor{
		node:      cfg.Node,
		log:       cfg.Logger,
		socketDir: cfg.SocketDir,
		startTO:   cfg.StartTimeout,
		plugins:   make(map[string]*managed),
		handles:   make(map[string]string),
		callbacks: &nodeHost{cfg.Node},
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.socketDir == "" {
		dir, err := os.MkdirTemp("", "peernet-plugins-")
		if err != nil {
			return nil, fmt.Errorf("plugin: creating socket dir: %w", err)
		}
		s.socketDir, s.ownDir = dir, true
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Apply makes the running plugins match cfgs: it starts new plugins, stops
// removed ones, swaps those whose binary or process settings changed, and
// re-exposes handles whose options changed, leaving unchanged plugins
// alone. A failed plugin whose configuration is applied again is restarted.
// It returns the errors of the plugins it could not bring up, joined; the
// rest of the change still applies.
func (s *Supervisor) Apply(ctx context.Context, cfgs []Config) error {
	want := make(map[string]Config, len(cfgs))
	owner := map[string]string{}
	for _, c := range cfgs {
		c, err := c.withDefaults()
		if err != nil {
			return err
		}
		if _, dup := want[c.Name]; dup {
			return fmt.Errorf("plugin %s: configured twice", c.Name)
		}
		for _, h := range c.Handles {
			if other, dup := owner[h.Name]; dup {
				return fmt.Errorf("plugin: handle %q is exposed by both %s and %s", h.Name, other, c.Name)
			}
			owner[h.Name] = c.Name
		}
		want[c.Name] = c
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return host.ErrClosed
	}
	var removed []*managed
	for name, m := range s.plugins {
		if _, ok := want[name]; !ok {
			removed = append(removed, m)
		}
	}
	s.mu.Unlock()

	// Removals first, so their handles are free for plugins that take them.
	for _, m := range removed {
		s.remove(m)
	}
	var errs []error
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := s.apply(ctx, want[name]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// apply brings one plugin to cfg.
func (s *Supervisor) apply(ctx context.Context, cfg Config) error {
	s.mu.Lock()
	m := s.plugins[cfg.Name]
	if m == nil {
		m = &managed{s: s, name: cfg.Name, state: StateStarting, cfg: cfg}
		s.plugins[cfg.Name] = m
	}
	s.mu.Unlock()

	m.mu.Lock()
	old := m.cfg
	serving := m.gen != nil
	m.mu.Unlock()
	if serving && sameProcess(old, cfg) {
		m.mu.Lock()
		m.cfg = cfg
		m.mu.Unlock()
		return s.expose(m, old.Handles, cfg.Handles)
	}
	if err := m.startGeneration(ctx, cfg); err != nil {
		return err
	}
	if serving {
		return s.expose(m, old.Handles, cfg.Handles)
	}
	return s.expose(m, nil, cfg.Handles)
}

// expose registers m's handles with the node: new and changed ones are
// (re-)exposed, those no longer listed are revoked.
func (s *Supervisor) expose(m *managed, before, after []Handle) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range after {
		if other, ok := s.handles[h.Name]; ok && other != m.name {
			return fmt.Errorf("plugin %s: handle %q is already exposed by %s", m.name, h.Name, other)
		}
	}
	keep := map[string]bool{}
	for _, h := range after {
		keep[h.Name] = true
		i := slices.IndexFunc(before, func(b Handle) bool { return b.Name == h.Name })
		if i >= 0 && sameHandle(before[i], h) {
			if _, exposed := s.handles[h.Name]; exposed {
				continue
			}
		}
		opts := host.ExposeOptions{Allow: h.Allow, MaxConcurrent: h.MaxConcurrent, Timeout: h.Timeout}
		if err := s.node.Expose(h.Name, &handler{m: m}, opts); err != nil {
			return fmt.Errorf("plugin %s: exposing %q: %w", m.name, h.Name, err)
		}
		s.handles[h.Name] = m.name
	}
	for _, h := range before {
		if !keep[h.Name] && s.handles[h.Name] == m.name {
			s.node.Revoke(h.Name)
			delete(s.handles, h.Name)
		}
	}
	return nil
}

func sameHandle(a, b Handle) bool {
	return a.Name == b.Name && slices.Equal(a.Allow, b.Allow) && a.MaxConcurrent == b.MaxConcurrent && a.Timeout == b.Timeout
}

// Remove revokes every handle of the named plugin at once and stops its
// process, letting calls in flight finish within its grace period. It
// blocks until the process is gone.
func (s *Supervisor) Remove(name string) error {
	s.mu.Lock()
	m := s.plugins[name]
	s.mu.Unlock()
	if m == nil {
		return fmt.Errorf("plugin: no plugin named %q", name)
	}
	s.remove(m)
	return nil
}

func (s *Supervisor) remove(m *managed) {
	s.mu.Lock()
	for h, owner := range s.handles {
		if owner == m.name {
			s.node.Revoke(h)
			delete(s.handles, h)
		}
	}
	delete(s.plugins, m.name)
	s.mu.Unlock()
	m.stop()
}

// RevokeHandle closes one handle of a plugin at once: the next call gets
// "no such handle". When no exposed handle of the plugin is left, its
// process is stopped as by Remove.
func (s *Supervisor) RevokeHandle(plugin, handle string) error {
	s.mu.Lock()
	m := s.plugins[plugin]
	if m == nil || s.handles[handle] != plugin {
		s.mu.Unlock()
		return fmt.Errorf("plugin: %s does not expose %q", plugin, handle)
	}
	s.node.Revoke(handle)
	delete(s.handles, handle)
	left := 0
	for _, owner := range s.handles {
		if owner == plugin {
			left++
		}
	}
	s.mu.Unlock()

	m.mu.Lock()
	m.cfg.Handles = slices.DeleteFunc(slices.Clone(m.cfg.Handles), func(h Handle) bool { return h.Name == handle })
	m.mu.Unlock()
	if left == 0 {
		s.mu.Lock()
		delete(s.plugins, plugin)
		s.mu.Unlock()
		m.stop()
	}
	return nil
}

// Status returns a snapshot of every plugin, sorted by name.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	ms := make([]*managed, 0, len(s.plugins))
	for _, m := range s.plugins {
		ms = append(ms, m)
	}
	exposed := map[string][]string{}
	for h, owner := range s.handles {
		exposed[owner] = append(exposed[owner], h)
	}
	s.mu.Unlock()
	out := make([]Status, 0, len(ms))
	for _, m := range ms {
		st := m.status()
		st.Handles = exposed[m.name]
		sort.Strings(st.Handles)
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Close stops every plugin, each within its grace period, and waits for
// everything the supervisor started. Safe to call more than once.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var ms []*managed
	for _, m := range s.plugins {
		ms = append(ms, m)
	}
	for h := range s.handles {
		s.node.Revoke(h)
	}
	s.handles = map[string]string{}
	s.plugins = map[string]*managed{}
	s.mu.Unlock()

	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.stop()
		}()
	}
	wg.Wait()
	s.cancel()
	s.wg.Wait()
	if s.ownDir {
		os.RemoveAll(s.socketDir)
	}
	return nil
}

// managed is one configured plugin and its current generation.
type managed struct {
	s    *Supervisor
	name string

	mu       sync.Mutex
	cfg      Config
	state    State
	gen      *generation // serving generation; nil when none
	genNum   int
	restarts int
	crashes  []time.Time // within the policy window
	lastErr  error
	stopped  bool
	version  string
}

// generation is one plugin process.
type generation struct {
	num    int
	client *pluginclient.Client
	cfg    Config
}

// launch starts a process for cfg and checks that it serves every handle
// cfg exposes.
func (s *Supervisor) launch(ctx context.Context, cfg Config) (*pluginclient.Client, error) {
	c, err := pluginclient.Launch(ctx, pluginclient.LaunchConfig{
		Name:         cfg.Name,
		Path:         cfg.Path,
		Args:         cfg.Args,
		Env:          cfg.Env,
		SHA256:       cfg.SHA256,
		SocketDir:    s.socketDir,
		Logger:       s.log.Named(cfg.Name),
		Host:         s.callbacks,
		Config:       cfg.PluginConfig,
		StartTimeout: s.startTO,
	})
	if err != nil {
		return nil, err
	}
	served := c.Description().Handles
	for _, h := range cfg.Handles {
		if !slices.Contains(served, h.Name) {
			stopNow(c)
			return nil, fmt.Errorf("plugin %s: the binary does not serve handle %q (it serves %v)", cfg.Name, h.Name, served)
		}
	}
	return c, nil
}

func stopNow(c *pluginclient.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.Stop(ctx)
}

// startGeneration launches a new generation for cfg and makes it the one
// serving; a previous generation drains in the background. If the launch
// fails, a generation already serving keeps serving; with none, the plugin
// goes on as after a crash (restart with backoff, then failed).
func (m *managed) startGeneration(ctx context.Context, cfg Config) error {
	c, err := m.s.launch(ctx, cfg)
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		if c != nil {
			stopNow(c)
		}
		return host.ErrClosed
	}
	if err != nil {
		if m.gen != nil {
			m.mu.Unlock()
			m.s.log.Error("new generation failed to start; the old one keeps serving", "plugin", m.name, "error", err)
			return fmt.Errorf("plugin %s: new generation failed; generation %d keeps serving: %w", m.name, m.genNum, err)
		}
		m.cfg = cfg
		m.crashedLocked(err, false)
		m.mu.Unlock()
		return fmt.Errorf("plugin %s: %w", m.name, err)
	}
	old := m.gen
	m.genNum++
	g := &generation{num: m.genNum, client: c, cfg: cfg}
	m.gen, m.cfg, m.state, m.version = g, cfg, StateRunning, c.Description().Version
	m.crashes, m.lastErr = nil, nil
	m.mu.Unlock()
	m.s.log.Info("plugin generation serving", "plugin", m.name, "generation", g.num, "pid", c.Pid(), "version", m.version)
	m.watch(g)
	if old != nil {
		m.drain(old)
	}
	return nil
}

// watch waits for g's process to exit in a goroutine of the supervisor's.
func (m *managed) watch(g *generation) {
	m.s.wg.Add(1)
	go func() {
		defer m.s.wg.Done()
		<-g.client.Exited()
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.gen != g || m.stopped {
			return // swapped out or stopped on purpose
		}
		m.gen = nil
		err := g.client.ExitErr()
		if err == nil {
			err = errors.New("process exited")
		}
		m.s.log.Error("plugin crashed", "plugin", m.name, "generation", g.num, "error", err)
		m.crashedLocked(err, true)
	}()
}

// drain stops a swapped-out generation after its calls in flight, within
// the grace period, in the background.
func (m *managed) drain(g *generation) {
	m.s.wg.Add(1)
	go func() {
		defer m.s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.GracePeriod)
		defer cancel()
		g.client.Stop(ctx)
		m.s.log.Info("old plugin generation stopped", "plugin", m.name, "generation", g.num)
	}()
}

// crashedLocked records a crash (or failed launch) and either schedules a
// restart or marks the plugin failed. m.mu held.
func (m *managed) crashedLocked(err error, wasRunning bool) {
	now := time.Now()
	m.lastErr = err
	pol := m.cfg.Restart
	m.crashes = slices.DeleteFunc(m.crashes, func(t time.Time) bool { return now.Sub(t) > pol.Window })
	m.crashes = append(m.crashes, now)
	if len(m.crashes) > pol.MaxCrashes {
		m.state = StateFailed
		m.s.log.Error("plugin failed: too many crashes; its handles answer unavailable until it is applied again",
			"plugin", m.name, "crashes", len(m.crashes), "window", pol.Window)
		return
	}
	m.state = StateRestarting
	delay := pol.BackoffMin << (len(m.crashes) - 1)
	if delay > pol.BackoffMax || delay <= 0 {
		delay = pol.BackoffMax
	}
	delay = delay/2 + rand.N(delay/2+1)
	m.s.log.Info("restarting plugin", "plugin", m.name, "in", delay)
	m.s.wg.Add(1)
	go func() {
		defer m.s.wg.Done()
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-m.s.ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		if m.stopped || m.gen != nil || m.state != StateRestarting {
			m.mu.Unlock()
			return
		}
		cfg := m.cfg
		m.mu.Unlock()
		if err := m.startGeneration(m.s.ctx, cfg); err == nil {
			m.mu.Lock()
			m.restarts++
			m.mu.Unlock()
		}
	}()
}

// stop ends the plugin: no generation serves from now on, and the serving
// one finishes its calls in flight within the grace period. It blocks until
// the process is gone.
func (m *managed) stop() {
	m.mu.Lock()
	m.stopped = true
	g := m.gen
	m.gen, m.state = nil, StateStopped
	m.mu.Unlock()
	if g == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.GracePeriod)
	defer cancel()
	g.client.Stop(ctx)
	m.s.log.Info("plugin stopped", "plugin", m.name, "generation", g.num)
}

func (m *managed) status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{
		Name: m.name, Version: m.version, State: m.state, Generation: m.genNum,
		Restarts: m.restarts, Path: m.cfg.Path, SHA256: m.cfg.SHA256,
	}
	if m.gen != nil {
		st.Pid = m.gen.client.Pid()
		st.InFlight = m.gen.client.InFlight()
	}
	if m.lastErr != nil {
		st.LastError = m.lastErr.Error()
	}
	return st
}

// serving returns the generation that takes new calls, or an error saying
// why there is none.
func (m *managed) serving() (*generation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != nil {
		return m.gen, nil
	}
	switch m.state {
	case StateFailed:
		return nil, fmt.Errorf("%w: plugin %s failed after repeated crashes (last: %v)", host.ErrUnavailable, m.name, m.lastErr)
	case StateStopped:
		return nil, fmt.Errorf("%w: plugin %s is stopped", host.ErrUnavailable, m.name)
	}
	return nil, fmt.Errorf("%w: plugin %s is %s", host.ErrUnavailable, m.name, m.state)
}
