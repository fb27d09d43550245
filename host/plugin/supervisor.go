package plugin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/pluginsdk/pluginclient"
)

// Errors of the Supervisor's methods; match them with errors.Is. A launch
// that fails wraps pluginclient's error (pluginclient.ErrChecksum for a
// binary whose SHA-256 is not the configured one).
var (
	// ErrNoSuchPlugin: no plugin of that name is configured.
	ErrNoSuchPlugin = errors.New("plugin: no such plugin")
	// ErrBadName: a plugin name that CheckName refuses.
	ErrBadName = errors.New("plugin: bad name")
	// ErrMissingHandle: the plugin's binary does not serve a handle that
	// the configuration exposes.
	ErrMissingHandle = errors.New("plugin: binary does not serve a configured handle")
)

// State is where a plugin is in its life. It moves only along these
// transitions (m.mu held for each):
//
//	from        event                                       to
//	----        -----                                       --
//	(new)       Apply                                       starting
//	starting    launch serves                               running
//	starting    launch fails, binary at fault               failed
//	starting    launch fails otherwise                      restarting (a crash)
//	running     process exits                               restarting, or failed past the crash limit
//	running     Apply with a new process: launch serves     running (new generation; the old one retires)
//	running     Apply with a new process: launch fails      running (the old generation keeps serving)
//	restarting  backoff over, relaunch serves               running
//	restarting  backoff over, relaunch fails                restarting, or failed past the crash limit
//	restarting  Apply                                       running, restarting or failed, as for starting
//	failed      Apply                                       running, restarting or failed, as for starting
//	any         Remove, or its last handle revoked          revoked (no process, no handles; still listed)
//	revoked     Apply listing it                            running, restarting or failed, as for starting
//	revoked     Apply without it, or Close                  (forgotten)
//	any         Apply without it, or Close                  stopped (final: the plugin is forgotten)
//
// Only running has a serving generation; in every other state the
// plugin's exposed handles answer "unavailable" (a revoked plugin has
// none: its handles answer "no such handle").
type State string

const (
	StateStarting   State = "starting"   // first launch in progress
	StateRunning    State = "running"    // serving calls
	StateRestarting State = "restarting" // crashed; waiting out the backoff or relaunching
	StateFailed     State = "failed"     // crashed too often, or cannot be launched; handles answer "unavailable"
	StateStopped    State = "stopped"    // removed or supervisor closed
	// StateRevoked: stopped by Remove or RevokeHandle until the next Apply
	// that lists it, and listed by Status meanwhile, so that an operator
	// sees it was revoked rather than never configured.
	StateRevoked State = "revoked"
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
	InFlight   int      `json:"in_flight"`  // calls awaiting replies from the serving generation
	// LastError is the latest failure since the plugin's configuration
	// was last applied (a failed launch, a crash); a successful launch by
	// Apply clears it, a restart after a crash does not.
	LastError string `json:"last_error,omitempty"`
	Path      string `json:"path"`
	SHA256    string `json:"sha256"`
}

// SupervisorConfig configures a Supervisor.
type SupervisorConfig struct {
	// Node serves the plugins' handles and their callbacks. Required.
	Node *host.Node
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
	startTO   time.Duration
	callbacks *nodeHost
	// pins holds the sealed copies the plugins run, one per digest, shared
	// by every plugin and generation running the same content.
	pins pluginclient.PinCache

	ctx    context.Context // cancelled by Close; parent of every plugin's
	cancel context.CancelFunc
	wg     sync.WaitGroup // watchers, restart timers, draining generations

	// applyMu serializes Apply, Remove and RevokeHandle, so that each sees
	// the plugins as the previous one left them. It is held across
	// launches; Close and Status never take it.
	applyMu sync.Mutex

	mu      sync.Mutex // guards plugins, revoked, handles and closed; never held across a launch
	plugins map[string]*managed
	// revoked holds the last status of each revoked plugin (StateRevoked),
	// until an Apply starts it again or forgets it.
	revoked map[string]Status
	handles map[string]string // exposed handle -> plugin name; see exposeLocked
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
		startTO:   cfg.StartTimeout,
		plugins:   make(map[string]*managed),
		revoked:   make(map[string]Status),
		handles:   make(map[string]string),
		callbacks: &nodeHost{cfg.Node},
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Apply makes the running plugins match cfgs: it starts new plugins, stops
// removed ones, swaps those whose binary or process settings changed, and
// re-exposes handles whose options changed, leaving unchanged plugins
// alone. A failed plugin whose configuration is applied again is restarted
// with a clean crash history.
//
// A plugin whose launch fails because of its binary (checksum mismatch, a
// configured handle it does not serve, a protocol error, a missing file) is
// marked failed at once, and if it is new, exposes nothing; one whose
// process dies while starting has its handles exposed (answering
// "unavailable") and is restarted as after a crash. A swap that fails
// leaves the generation serving as it was.
//
// Apply blocks until every launch has finished or ctx ends. It returns the
// errors of the plugins it could not bring up, joined; the rest of the
// change still applies. A configuration that does not validate changes
// nothing.
func (s *Supervisor) Apply(ctx context.Context, cfgs []Config) error {
	want, err := validate(cfgs)
	if err != nil {
		return err
	}

	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return host.ErrClosed
	}
	// A revoked plugin that is listed starts afresh; one that is not is
	// forgotten.
	clear(s.revoked)
	var removed []*managed
	for name, m := range s.plugins {
		if _, ok := want[name]; !ok {
			removed = append(removed, m)
		}
	}
	// Handles that a plugin which stays no longer lists close first, so
	// that another plugin may take them over in this same Apply.
	for h, name := range s.handles {
		if c, ok := want[name]; ok && !slices.ContainsFunc(c.Handles, func(x Handle) bool { return x.Name == h }) {
			s.revokeLocked(h)
		}
	}
	s.mu.Unlock()

	// Removals first, so their handles are free for plugins that take them.
	for _, m := range removed {
		s.remove(m)
	}
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	// The plugins start side by side: a start is mostly waiting for a
	// process to exec and initialise, and a node with a hundred plugins
	// should not take a hundred starts to come up. The bound keeps a large
	// configuration from forking everything at once.
	errs := make([]error, len(names))
	sem := make(chan struct{}, parallelStarts)
	var wg sync.WaitGroup
	for i, name := range names {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = s.apply(ctx, want[name])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// validate checks cfgs as Apply does and returns them by name, with their
// defaults filled.
func validate(cfgs []Config) (map[string]Config, error) {
	want := make(map[string]Config, len(cfgs))
	owner := map[string]string{}
	for _, c := range cfgs {
		c, err := c.withDefaults()
		if err != nil {
			return nil, err
		}
		if _, dup := want[c.Name]; dup {
			return nil, fmt.Errorf("plugin %s: configured twice", c.Name)
		}
		for _, h := range c.Handles {
			if other, dup := owner[h.Name]; dup {
				return nil, fmt.Errorf("plugin: handle %q is exposed by both %s and %s", h.Name, other, c.Name)
			}
			owner[h.Name] = c.Name
		}
		want[c.Name] = c
	}
	return want, nil
}

// Declare exposes the handles of the plugins in cfgs that the supervisor
// does not run yet, before their processes start: until Apply has started
// them they answer "unavailable" (the plugin is starting) rather than "no
// such handle". A node that holds requests until its plugins are up
// (host.Config.HoldRequests) can call Ready after Declare, and serve the
// plugins that are up while the others still start. Declare validates cfgs
// as Apply does and changes nothing else; Apply must follow with the same
// configurations. A plugin whose start then fails for good has its
// declared handles closed again.
func (s *Supervisor) Declare(cfgs []Config) error {
	want, err := validate(cfgs)
	if err != nil {
		return err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	for _, c := range want {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return host.ErrClosed
		}
		if s.plugins[c.Name] != nil {
			s.mu.Unlock()
			continue
		}
		m := s.newManaged(c)
		m.declared = true
		s.plugins[c.Name] = m
		s.mu.Unlock()
		if err := s.expose(m, nil, c.Handles); err != nil {
			return err
		}
	}
	return nil
}

// parallelStarts bounds the plugins Apply starts at once.
var parallelStarts = max(8, 4*runtime.GOMAXPROCS(0))

// Changes names what Apply(cfgs) would change now, sorted, for reload
// reports and logs: "+name" for a plugin it would start, "-name" for one it
// would stop or, if revoked, forget, and "~name (what; ...)" for one it
// would change. What is Config.Diff against the configuration the plugin
// runs with now (the last one applied that came up, less the handles
// revoked since), led by "restarted: it had failed" for a failed plugin;
// a revoked plugin that cfgs list is "+name (restored: it was revoked)".
// So a plugin whose running configuration cfgs repeat is not named at all.
// cfgs that Apply would refuse yield its error.
func (s *Supervisor) Changes(cfgs []Config) ([]string, error) {
	want, err := validate(cfgs)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	current := make(map[string]*managed, len(s.plugins))
	for name, m := range s.plugins {
		current[name] = m
	}
	revoked := make(map[string]bool, len(s.revoked))
	for name := range s.revoked {
		revoked[name] = true
	}
	s.mu.Unlock()

	var out []string
	for name, c := range want {
		m := current[name]
		switch {
		case revoked[name]:
			out = append(out, "+"+name+" (restored: it was revoked)")
		case m == nil:
			out = append(out, "+"+name)
		default:
			m.mu.Lock()
			what := m.cfg.Diff(c)
			if m.state == StateFailed {
				what = append([]string{"restarted: it had failed"}, what...)
			}
			m.mu.Unlock()
			if len(what) > 0 {
				out = append(out, "~"+name+" ("+strings.Join(what, "; ")+")")
			}
		}
	}
	for name := range current {
		if _, ok := want[name]; !ok {
			out = append(out, "-"+name)
		}
	}
	for name := range revoked {
		if _, ok := want[name]; !ok {
			out = append(out, "-"+name+" (it was revoked)")
		}
	}
	sort.Strings(out)
	return out, nil
}

// apply brings one plugin to cfg. s.applyMu held; Apply runs several at
// once, each for another plugin.
func (s *Supervisor) apply(ctx context.Context, cfg Config) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return host.ErrClosed
	}
	m := s.plugins[cfg.Name]
	fresh := m == nil
	if fresh {
		m = s.newManaged(cfg)
		s.plugins[cfg.Name] = m
	}
	s.mu.Unlock()

	m.mu.Lock()
	old, state, g, declared := m.cfg, m.state, m.gen, m.declared
	m.declared = false
	m.mu.Unlock()
	var before []Handle
	if !fresh {
		before = old.Handles
	}
	if declared { // exposed by Declare; the process is still to start
		exposeNow, err := m.applyGeneration(ctx, cfg)
		if exposeNow {
			return errors.Join(err, s.expose(m, before, cfg.Handles))
		}
		return errors.Join(err, s.expose(m, before, nil))
	}
	if !fresh && state != StateFailed && sameProcess(old, cfg) {
		// Running, or waiting out a restart's backoff: the process (or the
		// one about to start) stays; only the handles and policy change.
		if g != nil {
			if err := checkHandles(cfg, g.client.Description().Handles); err != nil {
				return err
			}
		}
		m.mu.Lock()
		m.cfg = cfg
		m.mu.Unlock()
		return s.expose(m, before, cfg.Handles)
	}
	exposeNow, err := m.applyGeneration(ctx, cfg)
	if exposeNow {
		err = errors.Join(err, s.expose(m, before, cfg.Handles))
	}
	return err
}

// expose registers m's handles with the node: new and changed ones are
// (re-)exposed, those no longer listed are revoked.
func (s *Supervisor) expose(m *managed, before, after []Handle) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.plugins[m.name] != m {
		return fmt.Errorf("plugin %s: %w", m.name, host.ErrClosed)
	}
	for _, h := range after {
		if other, ok := s.handles[h.Name]; ok && other != m.name {
			return fmt.Errorf("plugin %s: handle %q is already exposed by %s", m.name, h.Name, other)
		}
	}
	keep := map[string]bool{}
	for _, h := range after {
		keep[h.Name] = true
		i := slices.IndexFunc(before, func(b Handle) bool { return b.Name == h.Name })
		if i >= 0 && before[i].ExposeOptions.Equal(h.ExposeOptions) {
			if _, exposed := s.handles[h.Name]; exposed {
				continue
			}
		}
		if err := s.exposeLocked(h, m); err != nil {
			return fmt.Errorf("plugin %s: exposing %q: %w", m.name, h.Name, err)
		}
	}
	for _, h := range before {
		if !keep[h.Name] && s.handles[h.Name] == m.name {
			s.revokeLocked(h.Name)
		}
	}
	return nil
}

// exposeLocked exposes h on the node, served by m. s.handles, the record
// of which plugin owns which handle, changes only here and in
// revokeLocked, together with the node's own table. s.mu held.
func (s *Supervisor) exposeLocked(h Handle, m *managed) error {
	if err := s.node.Expose(h.Name, &handler{m: m}, h.ExposeOptions); err != nil {
		return err
	}
	s.handles[h.Name] = m.name
	return nil
}

// revokeLocked closes handle on the node. s.mu held.
func (s *Supervisor) revokeLocked(handle string) {
	s.node.Revoke(handle)
	delete(s.handles, handle)
}

// ownedLocked lists the handles that plugin name has exposed, sorted.
// s.mu held.
func (s *Supervisor) ownedLocked(name string) []string {
	var out []string
	for h, owner := range s.handles {
		if owner == name {
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out
}

// Remove revokes every handle of the named plugin at once and stops its
// process, letting calls in flight finish within its grace period. It
// blocks until the process is gone. The plugin is then revoked: Status
// lists it as such until the next Apply starts it again (if listed) or
// forgets it. It fails with ErrNoSuchPlugin when no plugin of that name is
// configured; removing a revoked plugin again does nothing.
func (s *Supervisor) Remove(name string) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	m := s.plugins[name]
	_, revoked := s.revoked[name]
	s.mu.Unlock()
	if revoked {
		return nil
	}
	if m == nil {
		return fmt.Errorf("%w: %q", ErrNoSuchPlugin, name)
	}
	s.remove(m)
	s.markRevoked(m)
	return nil
}

// markRevoked lists the stopped m as revoked, unless the supervisor has
// closed meanwhile.
func (s *Supervisor) markRevoked(m *managed) {
	st := m.status()
	st.State = StateRevoked
	s.mu.Lock()
	if !s.closed {
		s.revoked[m.name] = st
	}
	s.mu.Unlock()
}

func (s *Supervisor) remove(m *managed) {
	s.mu.Lock()
	for _, h := range s.ownedLocked(m.name) {
		s.revokeLocked(h)
	}
	delete(s.plugins, m.name)
	s.mu.Unlock()
	m.stop()
}

// RevokeHandle closes one handle of a plugin at once: the next call gets
// "no such handle". When no exposed handle of the plugin is left, its
// process is stopped as by Remove, and RevokeHandle blocks until it is
// gone. It fails with ErrNoSuchPlugin for an unknown plugin and with
// host.ErrNoSuchHandle when the plugin does not expose the handle. A later
// Apply that lists the handle exposes it again.
func (s *Supervisor) RevokeHandle(plugin, handle string) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	m := s.plugins[plugin]
	if m == nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNoSuchPlugin, plugin)
	}
	if s.handles[handle] != plugin {
		s.mu.Unlock()
		return fmt.Errorf("%w: plugin %s does not expose %q", host.ErrNoSuchHandle, plugin, handle)
	}
	s.revokeLocked(handle)
	left := len(s.ownedLocked(plugin))
	if left == 0 {
		delete(s.plugins, plugin)
	}
	s.mu.Unlock()

	m.mu.Lock()
	m.cfg.Handles = slices.DeleteFunc(slices.Clone(m.cfg.Handles), func(h Handle) bool { return h.Name == handle })
	m.mu.Unlock()
	if left == 0 {
		m.stop()
		s.markRevoked(m)
	}
	return nil
}

// Status returns a snapshot of every plugin, sorted by name. It does not
// block on launches; the caller owns the slice.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	ms := make([]*managed, 0, len(s.plugins))
	for _, m := range s.plugins {
		ms = append(ms, m)
	}
	exposed := make([][]string, len(ms))
	for i, m := range ms {
		exposed[i] = s.ownedLocked(m.name)
	}
	s.mu.Unlock()
	out := make([]Status, 0, len(ms))
	for i, m := range ms {
		st := m.status()
		st.Handles = exposed[i]
		out = append(out, st)
	}
	s.mu.Lock()
	for _, st := range s.revoked {
		out = append(out, st)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Close revokes every plugin handle, stops every plugin, each within its
// grace period (a launch in progress is abandoned), and waits for
// everything the supervisor started. Later calls to Apply fail with
// host.ErrClosed. Safe to call more than once.
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
		s.revokeLocked(h)
	}
	s.plugins = map[string]*managed{}
	clear(s.revoked)
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
	return nil
}

// managed is one configured plugin and its current generation.
type managed struct {
	s      *Supervisor
	name   string
	ctx    context.Context // cancelled by stop: abandons a launch, ends a pending restart
	cancel context.CancelFunc

	// launchMu is held across every launch and what follows it, so that
	// launches of one plugin never overlap and stop can wait for one.
	launchMu sync.Mutex
	// pin is the sealed copy of cfg's binary, pinned by the last launch
	// Apply made: restarts run it without reading the file again. nil
	// when that launch could not pin it. Guarded by launchMu.
	pin *pluginclient.Pinned

	mu         sync.Mutex
	cfg        Config
	state      State
	gen        *generation // serving generation; nil when none
	genNum     int
	restarts   int
	crashes    []time.Time // within the policy window, since the last Apply
	restartSeq int         // identifies the pending restart; older ones give up
	lastErr    error
	version    string
	declared   bool // exposed by Declare, not yet started by Apply
}

func (s *Supervisor) newManaged(cfg Config) *managed {
	m := &managed{s: s, name: cfg.Name, state: StateStarting, cfg: cfg}
	m.ctx, m.cancel = context.WithCancel(s.ctx)
	return m
}

// generation is one plugin process.
type generation struct {
	num    int
	client *pluginclient.Client
	cfg    Config
	// crashed is set when the process died while serving, before the
	// supervisor stops the client: calls that Stop then ends with
	// pluginclient.ErrClosed were in flight in a crash.
	crashed atomic.Bool
}

// launch starts a process running pin, cfg's pinned binary, and checks
// that it serves every handle cfg exposes.
func (s *Supervisor) launch(ctx context.Context, cfg Config, pin *pluginclient.Pinned) (*pluginclient.Client, error) {
	c, err := pluginclient.Launch(ctx, pluginclient.LaunchConfig{
		Name:         cfg.Name,
		Path:         cfg.Path,
		Args:         cfg.Args,
		Env:          cfg.Env,
		SHA256:       cfg.SHA256,
		Pinned:       pin,
		Logger:       s.log.Named(cfg.Name),
		Host:         s.callbacks,
		Config:       cfg.PluginConfig,
		StartTimeout: s.startTO,
	})
	if err != nil {
		return nil, err
	}
	if err := checkHandles(cfg, c.Description().Handles); err != nil {
		stopNow(c)
		return nil, err
	}
	return c, nil
}

// checkHandles reports ErrMissingHandle for the first handle of cfg not in
// served.
func checkHandles(cfg Config, served []string) error {
	for _, h := range cfg.Handles {
		if !slices.Contains(served, h.Name) {
			return fmt.Errorf("%w: plugin %s (%s) does not serve %q (it serves %v)", ErrMissingHandle, cfg.Name, cfg.Path, h.Name, served)
		}
	}
	return nil
}

// permanent reports whether a launch failed because of the binary itself
// or its path, which Apply reports at once instead of retrying.
func permanent(err error) bool {
	for _, target := range []error{pluginclient.ErrChecksum, ErrMissingHandle, pluginclient.ErrProtocol, fs.ErrNotExist, fs.ErrPermission} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// stopNow stops c without a grace period; it blocks until the process is
// gone.
func stopNow(c *pluginclient.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.Stop(ctx)
}

// applyGeneration launches a generation for cfg on behalf of Apply. It
// reports whether cfg's handles should be exposed now: when the generation
// serves, or when the plugin is restarting after its process died while
// starting.
func (m *managed) applyGeneration(ctx context.Context, cfg Config) (exposeNow bool, err error) {
	m.launchMu.Lock()
	defer m.launchMu.Unlock()
	return m.launchLocked(ctx, cfg, true)
}

// launchLocked launches a new generation for cfg and makes it the one
// serving; a previous generation drains in the background. If the launch
// fails, a generation already serving keeps serving. With none, a failed
// restart counts as a crash (the binary may be in the middle of being
// replaced); a failed Apply is marked failed at once when the binary is at
// fault, and goes on as after a crash otherwise. applied says the launch is
// Apply's, which starts a fresh crash history and pins the binary afresh;
// otherwise it is a restart, which runs the binary pinned for m.cfg (and
// pins it only if that could not be done before). m.launchMu held.
func (m *managed) launchLocked(ctx context.Context, cfg Config, applied bool) (exposeNow bool, err error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(m.ctx, cancel)()
	pin, fresh := m.pin, applied || m.pin == nil
	var c *pluginclient.Client
	if fresh {
		pin, err = m.s.pins.Pin(cfg.Path, cfg.SHA256)
	}
	if err == nil {
		c, err = m.s.launch(lctx, cfg, pin)
	}
	// keepPin makes pin the copy restarts of cfg run; dropPin gives it up.
	keepPin := func() {
		if fresh {
			if m.pin != nil {
				m.pin.Release()
			}
			m.pin = pin
		}
	}
	dropPin := func() {
		if fresh && pin != nil {
			pin.Release()
		}
	}

	m.mu.Lock()
	if m.state == StateStopped {
		m.mu.Unlock()
		dropPin()
		if c != nil {
			stopNow(c)
		}
		return false, fmt.Errorf("plugin %s: stopped while starting: %w", m.name, host.ErrClosed)
	}
	if err != nil {
		m.lastErr = err
		if m.gen != nil {
			num := m.genNum
			m.mu.Unlock()
			dropPin()
			m.s.log.Error("new generation failed to start; the old one keeps serving", "plugin", m.name, "generation", num, "error", err)
			return false, fmt.Errorf("plugin %s: new generation failed; generation %d keeps serving: %w", m.name, num, err)
		}
		m.cfg = cfg
		keepPin()
		if applied {
			m.crashes = nil
		}
		if applied && permanent(err) {
			m.state = StateFailed
			m.mu.Unlock()
			m.s.log.Error("plugin failed: its binary cannot serve; apply a corrected configuration", "plugin", m.name, "error", err)
			return false, fmt.Errorf("plugin %s: %w", m.name, err)
		}
		m.crashedLocked(err)
		m.mu.Unlock()
		return true, fmt.Errorf("plugin %s: %w", m.name, err)
	}
	keepPin()
	old := m.gen
	m.genNum++
	g := &generation{num: m.genNum, client: c, cfg: cfg}
	version := c.Description().Version
	m.gen, m.cfg, m.state, m.version = g, cfg, StateRunning, version
	if applied {
		// The configuration just applied serves: earlier failures,
		// such as a swap that failed, are no longer the plugin's state.
		m.crashes, m.lastErr = nil, nil
	} else {
		m.restarts++
	}
	// stop waits for launchMu, and Close for stop before it waits for wg:
	// these Adds happen before that Wait.
	m.s.wg.Add(1)
	go m.watch(g)
	if old != nil {
		m.s.wg.Add(1)
		go func() {
			defer m.s.wg.Done()
			m.retire(old, "old plugin generation stopped")
		}()
	}
	m.mu.Unlock()
	m.s.log.Info("plugin generation serving", "plugin", m.name, "generation", g.num, "pid", c.Pid(), "version", version)
	return true, nil
}

// watch waits for g's process to exit; if g was still the serving
// generation, that is a crash.
func (m *managed) watch(g *generation) {
	defer m.s.wg.Done()
	<-g.client.Exited()
	m.mu.Lock()
	crashed := m.gen == g // a swap or stop takes g away first
	if crashed {
		g.crashed.Store(true)
		m.gen = nil
		err := g.client.ExitErr()
		if err == nil {
			err = errors.New("process exited")
		}
		m.s.log.Error("plugin crashed", "plugin", m.name, "generation", g.num, "error", err)
		m.crashedLocked(fmt.Errorf("generation %d: %w", g.num, err))
	}
	m.mu.Unlock()
	if crashed {
		stopNow(g.client) // releases what the client holds
	}
}

// retire stops g after its calls in flight, within its grace period, and
// logs what; it blocks until the process is gone. A swapped-out
// generation retires in the background; a stopped plugin's, in stop.
func (m *managed) retire(g *generation, what string) {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.GracePeriod)
	defer cancel()
	if err := g.client.Stop(ctx); err != nil {
		m.s.log.Warn(what+" with calls in flight", "plugin", m.name, "generation", g.num, "error", err)
		return
	}
	m.s.log.Info(what, "plugin", m.name, "generation", g.num)
}

// crashedLocked records a crash or a failed launch, and either schedules a
// restart or marks the plugin failed. m.mu held.
func (m *managed) crashedLocked(err error) {
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
	m.restartSeq++
	delay := backoff(pol, len(m.crashes))
	m.s.log.Info("restarting plugin", "plugin", m.name, "in", delay)
	m.s.wg.Add(1)
	go m.restartAfter(delay, m.restartSeq)
}

// backoff is the jittered delay before the restart after the n-th crash
// in the window: BackoffMin doubled per earlier crash, capped at
// BackoffMax, then drawn from its upper half.
func backoff(pol RestartPolicy, n int) time.Duration {
	d := pol.BackoffMin
	for i := 1; i < n && d < pol.BackoffMax; i++ {
		if d > pol.BackoffMax/2 {
			d = pol.BackoffMax
			break
		}
		d *= 2
	}
	d = min(d, pol.BackoffMax)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// restartAfter relaunches the plugin after delay, unless it was stopped,
// re-applied or scheduled again meanwhile.
func (m *managed) restartAfter(delay time.Duration, seq int) {
	defer m.s.wg.Done()
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-m.ctx.Done():
		return
	case <-t.C:
	}
	m.launchMu.Lock()
	defer m.launchMu.Unlock()
	m.mu.Lock()
	due := m.gen == nil && m.state == StateRestarting && m.restartSeq == seq
	cfg := m.cfg
	m.mu.Unlock()
	if due {
		m.launchLocked(m.ctx, cfg, false)
	}
}

// stop ends the plugin: no generation serves from now on, a launch in
// progress is abandoned, and the serving generation finishes its calls in
// flight within the grace period. It blocks until the process is gone.
func (m *managed) stop() {
	m.mu.Lock()
	g := m.gen
	m.gen, m.state = nil, StateStopped
	m.mu.Unlock()
	m.cancel()
	// A launch in progress ends soon, sees the state stopped and kills its
	// process: taking launchMu waits for that.
	m.launchMu.Lock()
	defer m.launchMu.Unlock()
	if m.pin != nil {
		m.pin.Release()
		m.pin = nil
	}
	if g != nil {
		m.retire(g, "plugin stopped")
	}
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
		return nil, fmt.Errorf("%w: plugin %s failed (last error: %v)", host.ErrUnavailable, m.name, m.lastErr)
	case StateStopped:
		return nil, fmt.Errorf("%w: plugin %s is stopped", host.ErrUnavailable, m.name)
	}
	return nil, fmt.Errorf("%w: plugin %s is %s", host.ErrUnavailable, m.name, m.state)
}
