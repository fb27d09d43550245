package pluginclient

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/internal/channel"
)

// DefaultStartTimeout bounds a launch when LaunchConfig.StartTimeout is 0.
const DefaultStartTimeout = 10 * time.Second

// LaunchConfig configures Launch. Launch does not modify it.
type LaunchConfig struct {
	// Name names the plugin in logs and errors. Required.
	Name string
	// Path is the plugin's executable: a binary, or a script starting with
	// "#!". It is pinned (see Pinned) and the pinned copy runs, never the
	// file itself: a binary is executed from the sealed copy; for a script,
	// the interpreter named on its "#!" line is executed, as the kernel
	// would, with the sealed copy's path "/proc/self/fd/4" in place of the
	// script's (the copy is the one descriptor besides stdio the plugin
	// inherits; the script sees that path as its $0). Path is also the
	// binary's argv[0] and names the plugin in errors. Required.
	Path string
	// Args are the plugin's arguments (without the program name).
	Args []string
	// Env is the plugin's whole environment ("KEY=value"), besides what
	// go-plugin and pluginsdk need: the host's own environment is not
	// inherited (a script's "#!/usr/bin/env ..." needs PATH here).
	Env []string
	// SHA256 is the hex SHA-256 the executable must have; a mismatch fails
	// with ErrChecksum. Empty skips the check (the node's supervisor
	// requires it). With Pinned set, it must be Pinned's digest, if given.
	SHA256 string
	// Pinned, when set, is the sealed copy to run, and Path is not read:
	// a restart of the same generation passes the copy its first launch
	// pinned, so it runs the same content without reading or hashing the
	// file again. The caller keeps its reference (Launch does not release
	// it) and must not release it before Launch returns. nil: Launch pins
	// Path itself, checking SHA256, and releases the copy once the process
	// has started.
	Pinned *Pinned
	// Logger receives the client's logs, the plugin's log entries (re-logged
	// at their level) and anything it prints, tagged with Name. nil discards
	// them all.
	Logger hclog.Logger
	// Host is served to the plugin for its callbacks; nil means the
	// plugin's callbacks fail with pluginsdk.ErrUnavailable.
	Host pluginsdk.Host
	// Config is handed to the plugin's Configure (JSON by convention).
	Config []byte
	// StartTimeout bounds the start, from exec to a plugin ready for calls;
	// 0 means DefaultStartTimeout.
	StartTimeout time.Duration
	// MaxMessageSize bounds each call's arguments and result; 0 means
	// pluginsdk.DefaultMaxMessageSize. At most pluginsdk.MaxMessageSizeLimit.
	MaxMessageSize int
}

// launched is the process side of a Client from Launch.
type launched struct {
	gp        *plugin.Client
	proc      *process
	limit     *outputLimiter // the process's output budget
	handshook bool           // the plugin printed its handshake line
}

// exitGrace is how long a plugin whose channel has closed gets to exit by
// itself before its process group is killed.
const exitGrace = 2 * time.Second

// stop ends the process: unless forced, the plugin gets exitGrace to exit
// by itself (it does once its channel has closed); then its whole process
// group is killed. stop returns once the process is reaped and go-plugin
// has read the last of its output.
func (l *launched) stop(forced bool) {
	if !forced {
		t := time.NewTimer(exitGrace)
		select {
		case <-l.proc.exited:
		case <-t.C:
			l.proc.log.Warn("plugin did not exit after its channel closed; killing it", "plugin", l.proc.name, "grace", exitGrace)
		}
		t.Stop()
	}
	_ = l.proc.Kill(context.Background())
	select {
	case <-l.proc.waited:
	case <-time.After(exitGrace):
		// go-plugin reaps the plugin once it has read its output to the
		// end, which a process that left the group (setsid) and kept the
		// pipes would hold off for ever: stop reading them.
		l.proc.log.Warn("a process the plugin started still holds its output; no longer reading it", "plugin", l.proc.name)
		l.proc.closeOutput()
		<-l.proc.waited
	}
	// go-plugin's last goroutine is past the Wait that closed waited and
	// marks the client exited next.
	for !l.gp.Exited() {
		time.Sleep(100 * time.Microsecond)
	}
	l.limit.flush() // the output has ended: say what was dropped
}

// Launch starts the plugin at cfg.Path and returns it ready for calls: it
// pins the executable (or uses cfg.Pinned), starts the pinned copy through
// go-plugin with one end of a new call channel as its descriptor 3 and no
// inherited environment, waits for go-plugin's handshake line, then asks
// the plugin to describe itself and configures it over the channel. It blocks until then or until
// cfg.StartTimeout or ctx's deadline; a cancellation of ctx is noticed once
// the process has started.
//
// Launch is Linux only, as pinning is (a sealed memfd executed through
// /proc/self/fd): on other systems it fails. The plugin runs in its own
// process group (Stop kills the whole group) and gets SIGKILL if the host
// process dies (Pdeathsig; only the plugin process itself, not processes
// it starts).
func Launch(ctx context.Context, cfg LaunchConfig) (*Client, error) {
	ocfg := OpenConfig{Name: cfg.Name, Host: cfg.Host, Config: cfg.Config, MaxMessageSize: cfg.MaxMessageSize, Logger: cfg.Logger}
	if err := ocfg.check(); err != nil {
		return nil, err
	}
	if cfg.Path == "" {
		return nil, fmt.Errorf("pluginclient: plugin %q: Path is empty", cfg.Name)
	}
	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}

	pin := cfg.Pinned
	if pin == nil {
		var err error
		if pin, err = new(PinCache).Pin(cfg.Path, cfg.SHA256); err != nil {
			return nil, fmt.Errorf("plugin %q: %w", cfg.Name, err) // err says pluginclient
		}
		// The started process holds what it needs of the copy: a mapping
		// of the binary, or the script's inherited descriptor.
		defer pin.Release()
	} else if cfg.SHA256 != "" && !pin.matches(cfg.SHA256) {
		return nil, fmt.Errorf("pluginclient: plugin %q (%s): %w: pinned copy has sha256 %s, configured %s", cfg.Name, cfg.Path, ErrChecksum, pin.SHA256(), cfg.SHA256)
	}
	hostEnd, pluginEnd, err := channel.Pair()
	if err != nil {
		return nil, fmt.Errorf("pluginclient: plugin %q: %w", cfg.Name, err)
	}
	conn, err := channel.Conn(hostEnd)
	if err != nil {
		pluginEnd.Close()
		return nil, fmt.Errorf("pluginclient: plugin %q: %w", cfg.Name, err)
	}
	l := &launched{}
	named := log.Named(cfg.Name)
	l.limit = newOutputLimiter(named) // one output budget per process
	l.gp = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: handshake,
		Plugins:         plugin.PluginSet{},
		RunnerFunc: func(_ hclog.Logger, cmd *exec.Cmd, _ string) (runner.Runner, error) {
			p, err := newProcess(cfg, pin, pluginEnd, cmd.Env, named, &lineLogger{log: named, stream: "stdout", lim: l.limit})
			l.proc = p
			return p, err
		},
		// go-plugin starts the process and reads its handshake line; it
		// never connects to the plugin, so there is no gRPC, no AutoMTLS
		// and no socket: calls travel on the channel.
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		SkipHostEnv:      true,
		StartTimeout:     timeout,
		// The plugin's stderr goes to lineLogger, which re-logs its JSON
		// log entries at their level; go-plugin's own logger would log
		// every line a second time (and cannot parse what a hostile
		// plugin writes without panicking).
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Off, Output: io.Discard}),
		Stderr: &lineLogger{log: named, stream: "stderr", lim: l.limit},
	})
	c, err := l.open(ctx, conn, pluginEnd, ocfg)
	if err != nil {
		if l.proc != nil && l.proc.pid != 0 {
			l.stop(true)
		}
		if l.proc != nil {
			err = l.proc.startFailure(err, l.handshook)
		}
		return nil, err
	}
	l.proc.startDone()
	return c, nil
}

// handshake is go-plugin's handshake with PeerNet's plugins.
var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  pluginsdk.ProtocolVersion,
	MagicCookieKey:   pluginsdk.MagicCookieKey,
	MagicCookieValue: pluginsdk.MagicCookieValue,
}

func (l *launched) open(ctx context.Context, conn net.Conn, pluginEnd *os.File, cfg OpenConfig) (*Client, error) {
	// Start the process and read its handshake line. The plugin holds its
	// end of the channel from then on; ours must go, so that the plugin's
	// exit ends the channel.
	_, err := l.gp.Start()
	pluginEnd.Close()
	l.handshook = err == nil
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("pluginclient: starting plugin %q: %w", cfg.Name, err)
	}
	c, err := open(ctx, conn, cfg, l)
	if err != nil {
		return nil, err
	}
	// Fail calls the moment the process is gone, even if the channel
	// somehow lingers.
	c.loops.Add(1)
	go func() {
		defer c.loops.Done()
		select {
		case <-l.proc.waited:
			c.ch.Close(fmt.Errorf("process exited: %v", exitText(l.proc.waitErr)))
		case <-c.ch.Done():
		}
	}()
	return c, nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
