package pluginclient

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
)

// Bounds of what a start keeps of the plugin's stderr.
const (
	tailLines   = 20   // the last lines kept
	tailLineMax = 1024 // bytes kept of one line
)

// stderrTail keeps the last lines a plugin wrote to stderr while it
// started, so that a failed start can show them: a traceback printed
// before the handshake line is the reason, and go-plugin logs such lines
// at debug level only. It stops keeping anything once the start is over.
// Write is called by go-plugin's stderr reader; the rest after the
// process is reaped. The mutex orders the two.
type stderrTail struct {
	mu      sync.Mutex
	off     bool
	lines   []string
	partial []byte
}

func (t *stderrTail) Write(p []byte) (int, error) {
	n := len(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.off {
		return n, nil
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := tailLineMax - len(t.partial); room > 0 {
			t.partial = append(t.partial, chunk[:min(room, len(chunk))]...)
		}
		if i < 0 {
			break
		}
		t.push()
		p = p[i+1:]
	}
	return n, nil
}

// push ends the partial line.
func (t *stderrTail) push() {
	line := strings.TrimRight(strings.ToValidUTF8(string(t.partial), "\uFFFD"), "\r")
	t.partial = t.partial[:0]
	if len(t.lines) == tailLines {
		t.lines = append(t.lines[:0], t.lines[1:]...)
	}
	t.lines = append(t.lines, line)
}

// stop drops what was kept and keeps nothing more: the start succeeded.
func (t *stderrTail) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.off, t.lines, t.partial = true, nil, nil
}

// last returns the kept lines, an unfinished last one included.
func (t *stderrTail) last() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.partial) > 0 {
		t.push()
	}
	return append([]string(nil), t.lines...)
}

// startDone ends what a start keeps: it succeeded.
func (p *process) startDone() { p.tail.stop() }

// startFailure adds to err, the failure of p's start, what happened to
// the process in words that fit the kind of plugin, and logs the plugin's
// last lines on stderr at warn level with its exit status. Call it once
// the process is reaped (go-plugin's Kill reaps it); handshook says
// whether the plugin printed its handshake line.
func (p *process) startFailure(err error, handshook bool) error {
	select {
	case <-p.waited:
	default:
		return err // not reaped: nothing to say about the exit yet
	}
	p.mu.Lock()
	// A process that was exiting when Kill came may still have looked
	// alive: only a SIGKILL death after a Kill is ours.
	var ws syscall.WaitStatus
	if ee, ok := p.waitErr.(*exec.ExitError); ok {
		ws, _ = ee.Sys().(syscall.WaitStatus)
	}
	killed := p.killed && ws.Signaled() && ws.Signal() == syscall.SIGKILL
	p.mu.Unlock()
	lines := p.tail.last()
	exit := exitText(p.waitErr)
	var what string
	switch {
	case p.pid == 0 && p.interp != "":
		what = fmt.Sprintf("cannot run the interpreter %s named on the script's #! line", p.interp)
	case p.pid == 0:
		what = "cannot execute it (is it built for this OS and architecture?)"
	case !killed:
		what = fmt.Sprintf("it exited (%s) before completing its start", exit)
	case handshook:
		// The plugin is alive and err says what it did (a configuration
		// it refused, say).
	case p.interp != "":
		what = fmt.Sprintf("the script (run by %s) did not print the handshake line of docs/plugin-protocol.md §3 in time, or printed another line first", p.interp)
	default:
		what = "it did not print go-plugin's handshake line in time, or printed another line first: a Go plugin calls pluginsdk.Serve from main; one in another language follows docs/plugin-protocol.md"
	}
	if p.pid != 0 {
		p.log.Warn("plugin failed to start", "plugin", p.name, "path", p.path, "exit", exit, "stderr", strings.Join(lines, "\n"))
	}
	if what == "" {
		return err
	}
	if n := len(lines); n > 0 {
		what += fmt.Sprintf("; its last line on stderr: %q", lines[n-1])
	}
	return fmt.Errorf("%w; %s", err, what)
}
