package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// The plugin section's floor is the raw TCP baseline's frames (tcp.go: an
// id, a length, the payload; calls multiplexed on one connection and
// matched by id) over a Unix socket pair to another process: this command
// re-executed with -serve-floor, which inherits its end of the pair as
// descriptor 3, as a plugin inherits its call channel. No handles, no
// statuses, no deadlines, no go-plugin: what any plugin transport on one
// machine pays at least.

// floorFD is the descriptor the -serve-floor child finds its end on: the
// first of exec.Cmd.ExtraFiles, as for a plugin's call channel.
const floorFD = 3

// floorChild is a running -serve-floor process and the parent's client to it.
type floorChild struct {
	cmd    *exec.Cmd
	client *tcpClient
}

// startFloor starts the floor's echo process and connects a client to it.
func startFloor() (*floorChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// Both ends close on exec, set under ForkLock as the os package does,
	// so that no other child started meanwhile inherits them.
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "floor"), os.NewFile(uintptr(fds[1]), "floor-child")
	defer theirs.Close()
	cmd := exec.Command(exe, "-serve-floor")
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = os.Stderr
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		ours.Close()
		return nil, err
	}
	c, err := net.FileConn(ours) // dups the descriptor
	ours.Close()
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	f := &floorChild{cmd: cmd, client: newFrameClient(c)}
	// One echo, so that the child is past exec and serving when startFloor
	// returns (its RSS is read next), as a plugin is once started.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := payload(smallPayload)
	r, err := f.client.echo(ctx, p)
	if err == nil {
		err = checkEcho(r, p)
	}
	if err != nil {
		f.close()
		return nil, fmt.Errorf("floor child: %w", err)
	}
	return f, nil
}

// pid is the echo process's ID.
func (f *floorChild) pid() int { return f.cmd.Process.Pid }

// close closes the client; the child reads EOF, exits, and is reaped.
func (f *floorChild) close() {
	f.client.close()
	f.cmd.Wait()
}

// serveFloor is the -serve-floor child: it echoes frames on descriptor 3
// until the parent closes its end.
func serveFloor() error {
	f := os.NewFile(floorFD, "floor")
	if f == nil {
		return errors.New("no descriptor 3")
	}
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("descriptor 3: %w", err)
	}
	defer c.Close()
	serveFrames(c)
	return nil
}
