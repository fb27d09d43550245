package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// The idle section measures what an idle connection costs the node that
// accepted it. The node runs in a child process (this command with
// -serve-idle) so that the clients' side, which lives in this process, does
// not pollute its figures. The parent drives it with one-line commands on
// its stdin, each answered with one line on its stdout:
//
//	(on start)        {"peer": "<PeerID>", "addr": "127.0.0.1:<port>"}
//	trust <PeerID>    ok | error <text>
//	stats             a JSON nodeStats, taken after two garbage collections
//	big <bytes>       ok: exposes "big", answering each call with that many fresh bytes
//	hwm               the process's peak RSS (VmHWM) in bytes
//	quit (or EOF)     the node closes and the child exits

// nodeStats is the child's view of itself.
type nodeStats struct {
	Goroutines int    `json:"goroutines"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	RSS        uint64 `json:"rss"` // VmRSS, bytes
	Conns      int    `json:"conns"`
}

type childHello struct {
	Peer trust.PeerID `json:"peer"`
	Addr string       `json:"addr"`
}

// serveIdleNode is the child's side: it runs one node and answers commands
// from in on out until quit or EOF.
func serveIdleNode(in io.Reader, out io.Writer) error {
	root, err := dataDirRoot()
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	n, err := startNode(root, "idle", 0)
	if err != nil {
		return err
	}
	defer n.Close()
	enc := json.NewEncoder(out)
	if err := enc.Encode(childHello{Peer: n.Identity(), Addr: n.Addr().String()}); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "trust":
			id, err := trust.ParsePeerID(arg)
			if err == nil {
				err = n.Trust(id, "")
			}
			if err != nil {
				fmt.Fprintf(out, "error %v\n", err)
				continue
			}
			fmt.Fprintln(out, "ok")
		case "big":
			if err := childBig(n, arg); err != nil {
				fmt.Fprintf(out, "error %v\n", err)
				continue
			}
			fmt.Fprintln(out, "ok")
		case "hwm":
			fmt.Fprintln(out, selfHWM())
		case "stats":
			if err := enc.Encode(statsOf(n)); err != nil {
				return err
			}
		case "quit":
			return nil
		default:
			fmt.Fprintf(out, "error unknown command %q\n", cmd)
		}
	}
	return sc.Err()
}

func statsOf(n *host.Node) nodeStats {
	runtime.GC()
	runtime.GC() // the second frees what the first's finalizers released
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := nodeStats{
		Goroutines: runtime.NumGoroutine(),
		HeapInuse:  ms.HeapInuse,
		StackInuse: ms.StackInuse,
		Sys:        ms.Sys,
		RSS:        selfRSS(),
	}
	for _, p := range n.Peers() {
		if p.Connected {
			s.Conns++
		}
	}
	return s
}

// idleResult is the idle section's figures.
type idleResult struct {
	Conns             int       `json:"conns"`
	WarmCall          int       `json:"warm_call_bytes"` // one call of this size per connection before idling; 0: none
	GoroutinesPerConn float64   `json:"goroutines_per_conn"`
	BytesPerConn      float64   `json:"heap_stack_bytes_per_conn"` // HeapInuse+StackInuse
	SysPerConn        float64   `json:"sys_bytes_per_conn"`
	RSSPerConn        float64   `json:"rss_bytes_per_conn"`
	BaseRSS           uint64    `json:"base_rss_bytes"`
	RSS               uint64    `json:"rss_bytes"`
	RSSAt1000         uint64    `json:"rss_bytes_at_1000"` // measured if Conns is 1000, else projected
	Projected         bool      `json:"rss_at_1000_projected"`
	OpenSeconds       float64   `json:"open_seconds"` // dialling and handshaking all Conns
	Before            nodeStats `json:"before"`
	After             nodeStats `json:"after"`
}

// child is the parent's handle on the -serve-idle process.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startChild() (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve-idle")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}, nil
}

func (c *child) line() (string, error) {
	if !c.out.Scan() {
		if err := c.out.Err(); err != nil {
			return "", err
		}
		return "", errors.New("child exited")
	}
	return c.out.Text(), nil
}

func (c *child) ask(cmd string) (string, error) {
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		return "", err
	}
	return c.line()
}

func (c *child) stats() (nodeStats, error) {
	var s nodeStats
	l, err := c.ask("stats")
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal([]byte(l), &s)
}

// settled polls stats until the goroutine count holds still between two
// polls and cond holds, or the deadline passes.
func (c *child) settled(what string, cond func(nodeStats) bool) (nodeStats, error) {
	deadline := time.Now().Add(60 * time.Second)
	prev := -1
	for {
		s, err := c.stats()
		if err != nil {
			return s, err
		}
		if cond(s) && s.Goroutines == prev {
			return s, nil
		}
		prev = s.Goroutines
		if time.Now().After(deadline) {
			return s, fmt.Errorf("timed out waiting until %s (last: %+v)", what, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *child) stop() {
	fmt.Fprintln(c.in, "quit")
	c.in.Close()
	done := make(chan struct{})
	go func() {
		c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

type rawClient struct {
	id    *trust.Identity
	local *wire.Local
	conn  *wire.Conn
}

// measureIdle opens o.idle raw wire clients to a node in a child process,
// each with an identity of its own that the node trusts, and reports the
// node's growth per connection.
func measureIdle(o *options) (*idleResult, error) {
	ch, err := startChild()
	if err != nil {
		return nil, fmt.Errorf("starting the node's process: %w", err)
	}
	defer ch.stop()
	l, err := ch.line()
	if err != nil {
		return nil, fmt.Errorf("reading the node's address: %w", err)
	}
	var hello childHello
	if err := json.Unmarshal([]byte(l), &hello); err != nil {
		return nil, fmt.Errorf("reading the node's address: %w", err)
	}

	clients := make([]rawClient, o.idle)
	for i := range clients {
		id, err := trust.GenerateIdentity()
		if err != nil {
			return nil, err
		}
		local, err := wire.NewLocal(id, wire.Config{})
		if err != nil {
			return nil, err
		}
		clients[i] = rawClient{id: id, local: local}
		if l, err := ch.ask("trust " + id.PeerID().String()); err != nil || l != "ok" {
			return nil, fmt.Errorf("trusting client %d: %q, %v", i, l, err)
		}
	}
	defer func() {
		for _, c := range clients {
			if c.conn != nil {
				c.conn.Close()
			}
		}
	}()

	before, err := ch.settled("the node is quiet", func(nodeStats) bool { return true })
	if err != nil {
		return nil, err
	}
	o.progress("idle: node before: %+v", before)

	t0 := time.Now()
	if err := openClients(clients, hello); err != nil {
		return nil, err
	}
	openTime := time.Since(t0)
	if o.idleWarm > 0 {
		o.progress("idle: each client makes one %d-byte call before going idle", o.idleWarm)
		if err := warmClients(clients, o.idleWarm); err != nil {
			return nil, err
		}
	}
	after, err := ch.settled(fmt.Sprintf("the node has %d connections", len(clients)), func(s nodeStats) bool {
		return s.Conns == len(clients)
	})
	if err != nil {
		return nil, err
	}
	o.progress("idle: node after: %+v", after)

	n := float64(len(clients))
	res := &idleResult{
		Conns:             len(clients),
		WarmCall:          o.idleWarm,
		GoroutinesPerConn: float64(after.Goroutines-before.Goroutines) / n,
		BytesPerConn:      (float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)) / n,
		SysPerConn:        (float64(after.Sys) - float64(before.Sys)) / n,
		RSSPerConn:        (float64(after.RSS) - float64(before.RSS)) / n,
		BaseRSS:           before.RSS,
		RSS:               after.RSS,
		OpenSeconds:       openTime.Seconds(),
		Before:            before,
		After:             after,
	}
	res.RSSAt1000 = after.RSS
	if len(clients) != 1000 {
		res.Projected = true
		res.RSSAt1000 = uint64(float64(before.RSS) + 1000*res.RSSPerConn)
	}
	return res, nil
}

// openClients dials and handshakes every client, a few at a time.
func openClients(clients []rawClient, hello childHello) error {
	const dialers = 8
	next := make(chan int)
	errs := make(chan error, dialers)
	var wg sync.WaitGroup
	for range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c := &clients[i]
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var d net.Dialer
				raw, err := d.DialContext(ctx, "tcp", hello.Addr)
				if err == nil {
					c.conn, err = wire.Client(ctx, raw, c.local, hello.Peer)
				}
				cancel()
				if err != nil {
					errs <- fmt.Errorf("connecting client %d: %w", i, err)
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range clients {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// warmClients has every client make one call of size bytes to a handle the
// node does not expose, and read the "no such handle" reply, so that the
// node's side has carried a message of that size before it goes idle.
func warmClients(clients []rawClient, size int) error {
	msg, err := wire.AppendMessage(nil, &wire.Message{Type: wire.TypeCall, ID: 1, Handle: "not-exposed", Body: make([]byte, size)}, 0)
	if err != nil {
		return err
	}
	for i, c := range clients {
		if _, err := c.conn.Write(msg); err != nil {
			return fmt.Errorf("warming client %d: %w", i, err)
		}
		var m wire.Message
		c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := wire.NewDecoder(c.conn, 0).Decode(&m); err != nil {
			return fmt.Errorf("warming client %d: %w", i, err)
		}
		c.conn.SetReadDeadline(time.Time{})
		if m.Type != wire.TypeReply || m.Status != wire.StatusNoSuchHandle {
			return fmt.Errorf("warming client %d: got %v %v, want a no-such-handle reply", i, m.Type, m.Status)
		}
	}
	return nil
}
