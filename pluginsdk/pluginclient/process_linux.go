package pluginclient

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/peernet/peernet/pluginsdk"
)

// process runs a plugin binary for go-plugin (it implements runner.Runner).
//
// The process gets its own process group, so that Kill reaches everything it
// started, and SIGKILL when the host dies (Pdeathsig). Linux sends the
// parent-death signal when the *thread* that forked the child exits, and the
// Go runtime ends a thread whenever a goroutine exits while locked to it —
// any goroutine of any library. So the child is started, watched and reaped
// by one goroutine that stays locked to its thread for the child's whole
// life: no other goroutine ever runs on that thread, and the thread lives
// until the child is gone.
type process struct {
	name   string
	path   string // LaunchConfig.Path, for messages
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr io.ReadCloser
	log    hclog.Logger
	interp string      // a script's interpreter; empty for a binary
	tail   *stderrTail // stderr while the plugin starts

	pid    int           // set before Start returns
	exited chan struct{} // closed once the child has exited, before it is reaped
	reap   chan struct{} // closed by Wait: reap the child now
	waited chan struct{} // closed once the child is reaped
	// waitErr is how the child ended; read it after waited is closed.
	waitErr error

	mu     sync.Mutex
	dead   bool // the child has exited and its group was killed
	killed bool // Kill found the child alive: it did not exit by itself
}

func newProcess(cfg LaunchConfig, pin *Pinned, channelEnd *os.File, pluginEnv []string, log hclog.Logger, stdoutLog io.Writer) (*process, error) {
	env := slices.Concat(cfg.Env, pluginEnv, []string{pluginsdk.LogLevelEnv + "=" + levelName(log.GetLevel())})
	cmd := &exec.Cmd{
		Env: env,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	// The plugin's end of the call channel is its descriptor 3.
	cmd.ExtraFiles = []*os.File{channelEnd}
	var interpPath string
	if interp := pin.Interpreter(); interp != nil {
		interpPath = interp[0]
		// What the kernel would run for the script, except that the script
		// is the sealed copy, inherited as the child's descriptor 4: the
		// one descriptor besides the channel it keeps across exec.
		cmd.ExtraFiles = append(cmd.ExtraFiles, pin.c.file)
		scriptFD := uintptr(2 + len(cmd.ExtraFiles))
		cmd.Path = interp[0]
		cmd.Args = slices.Concat(interp, []string{execPath(scriptFD)}, cfg.Args)
	} else {
		// The sealed copy itself; close-on-exec, so the plugin does not
		// inherit it.
		cmd.Path = execPath(pin.c.file.Fd())
		cmd.Args = append([]string{cfg.Path}, cfg.Args...)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	return &process{
		name: cfg.Name,
		path: cfg.Path,
		cmd:  cmd,
		// go-plugin reads stdout for the handshake line and discards the
		// rest; the rest is the plugin's output, for the log.
		stdout: readCloser{io.TeeReader(stdout, &afterFirstLine{w: stdoutLog}), stdout},
		stderr: stderr,
		log:    log,
		exited: make(chan struct{}),
		interp: interpPath,
		tail:   &stderrTail{},
		reap:   make(chan struct{}),
		waited: make(chan struct{}),
	}, nil
}

func levelName(l hclog.Level) string {
	if l == hclog.NoLevel {
		return "info"
	}
	return l.String()
}

func (p *process) Start(context.Context) error {
	started := make(chan error, 1)
	go p.run(started)
	return <-started
}

func (p *process) run(started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := p.cmd.Start(); err != nil {
		p.waitErr = err
		close(p.exited)
		close(p.waited)
		started <- err
		return
	}
	p.pid = p.cmd.Process.Pid
	started <- nil

	// Wait for the exit without reaping: while the child is a zombie its pid
	// and group ID cannot be reused, so killing the group is safe.
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	p.mu.Lock()
	p.dead = true
	_ = unix.Kill(-p.pid, unix.SIGKILL) // whatever the plugin left behind
	p.mu.Unlock()
	close(p.exited)

	// go-plugin calls Wait once it has read all output; exec.Cmd.Wait closes
	// the pipes, so it must not run earlier.
	<-p.reap
	p.waitErr = p.cmd.Wait()
	close(p.waited)
}

func (p *process) Wait(context.Context) error {
	select {
	case <-p.reap:
	default:
		close(p.reap)
	}
	<-p.waited
	return p.waitErr
}

// Kill kills the plugin and its whole process group with SIGKILL. It is safe
// to call more than once and after the plugin exited.
func (p *process) Kill(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pid == 0 || p.dead {
		return nil
	}
	p.killed = true
	err := unix.Kill(-p.pid, unix.SIGKILL)
	_ = unix.Kill(p.pid, unix.SIGKILL) // in case it left its group
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// closeOutput closes the host's ends of the plugin's stdout and stderr,
// which ends go-plugin's reading of them.
func (p *process) closeOutput() {
	_ = p.stdout.Close()
	_ = p.stderr.Close()
}

func (p *process) Stdout() io.ReadCloser { return p.stdout }

// Stderr is what go-plugin reads the plugin's stderr from; a start keeps
// the last lines it reads (stderrTail).
func (p *process) Stderr() io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{io.TeeReader(p.stderr, p.tail), p.stderr}
}
func (p *process) Name() string { return p.name }
func (p *process) ID() string {
	if p.pid == 0 {
		return ""
	}
	return strconv.Itoa(p.pid)
}

// Diagnose adds nothing to go-plugin's error: what went wrong is known
// only once the process is gone (startFailure).
func (p *process) Diagnose(context.Context) string { return "" }

func (p *process) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (p *process) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}
