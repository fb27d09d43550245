// Package channel implements the plugin call channel: the network's
// messages (docs/protocol.md §5, package wire's codec) over the socket pair
// a node shares with each plugin process, spoken the same way at both ends
// (docs/plugin-protocol.md).
//
// Either end calls and sends; either end serves. Every call and send names a
// peer in front of its arguments: the peer a call comes from (node to
// plugin) or goes to (plugin to node); the zero key names the node itself,
// whose calls are the session's own (describe, configure, peers).
package channel

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/pluginsdk/internal/outbox"
	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

const (
	// AddrSize is the size of the peer key in front of every call's and
	// send's arguments.
	AddrSize = 32
	// Overhead is how much longer than the largest arguments or result a
	// message on the channel may be: a call's header with the longest
	// handle and the peer key.
	Overhead = wire.CallOverhead + wire.MaxHandleLen + AddrSize
	// DefaultMaxIncoming bounds the calls and sends the other end may have
	// running at once when Config.MaxIncoming is 0.
	DefaultMaxIncoming = 1024
	// DefaultWriteTimeout bounds one write when Config.WriteTimeout is 0:
	// an end that stops reading for that long ends the channel.
	DefaultWriteTimeout = 30 * time.Second
	// readBuffer is the reader's buffer: many small messages per read.
	readBuffer = 64 << 10
	// batchLimit bounds the bytes of one gathered write.
	batchLimit = 1 << 20
)

// The session's own handles, called with the zero peer.
const (
	HandleDescribe  = "peernet.describe"  // node to plugin: the plugin's description
	HandleConfigure = "peernet.configure" // node to plugin: its configuration
	HandlePeers     = "peernet.peers"     // plugin to node: the node's trusted peers
)

// Handler serves the other end's calls and sends. req.Caller is the peer
// named in front of the arguments (zero for the node itself); req.Args
// belongs to the handler. For a send the result is discarded.
type Handler func(ctx context.Context, req *rpc.Request) ([]byte, error)

// Config configures New.
type Config struct {
	// Name names the channel in errors (the plugin's name).
	Name string
	// MaxMessageSize bounds the arguments of each call and send and each
	// result, in both directions; 0 means wire.DefaultMaxMessageSize.
	MaxMessageSize int
	// Handler serves incoming calls and sends; nil answers unavailable.
	Handler Handler
	// MaxIncoming bounds the incoming calls and sends running at once;
	// more are answered overloaded. 0 means DefaultMaxIncoming.
	MaxIncoming int
	// WriteTimeout: see DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Lost builds the error that calls in flight, and later ones, get when
	// the channel ends for cause; nil returns cause itself.
	Lost func(cause error) error
	// Log receives what cannot be returned (outcomes of sends); nil
	// discards it.
	Log hclog.Logger
	// Outcome turns a handler's error into the reply's status and text;
	// nil means rpc.Outcome, right for a handler's own errors. The node's
	// end passes on the outcomes of the callbacks it makes for the plugin
	// as they are (rpc.Split).
	Outcome func(ctx context.Context, err error) (rpc.Status, string)
}

// frame is one encoded message: a header and a body written from where it
// lies.
type frame struct {
	head []byte
	body []byte
}

// Channel is one end of a call channel. Its methods are safe for concurrent
// use.
type Channel struct {
	conn    net.Conn
	cfg     Config
	maxMsg  int          // the longest message read
	limit   atomic.Int64 // the longest arguments and results
	out     *outbox.Outbox[frame]
	loops   sync.WaitGroup
	base    context.Context // parent of handler contexts; cancelled at the end
	cancel  context.CancelFunc
	handled sync.WaitGroup // running handlers

	mu       sync.Mutex
	nextID   uint64
	pending  map[uint64]chan result // our calls awaiting replies
	running  map[uint64]context.CancelFunc
	incoming int  // incoming calls and sends running
	retiring bool // we sent goaway replaced: no new calls from us
	retired  bool // the other end sent goaway replaced
	closing  bool // both did, nothing is in flight: closing
	err      error
	done     chan struct{} // closed once err is set; stops the writer
}

type result struct {
	body []byte
	err  error
}

// ErrRetired is what a call gets after either end started retiring the
// channel (goaway replaced): it was never sent.
var ErrRetired = rpc.Errorf(rpc.StatusUnavailable, "plugin channel is closing")

// New starts a channel over conn, which it owns from now on.
func New(conn net.Conn, cfg Config) *Channel {
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = wire.DefaultMaxMessageSize
	}
	if cfg.MaxIncoming <= 0 {
		cfg.MaxIncoming = DefaultMaxIncoming
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	base, cancel := context.WithCancel(context.Background())
	c := &Channel{
		conn:    conn,
		cfg:     cfg,
		maxMsg:  max(cfg.MaxMessageSize, maxErrorLen) + Overhead,
		out:     outbox.New[frame](),
		base:    base,
		cancel:  cancel,
		pending: make(map[uint64]chan result),
		running: make(map[uint64]context.CancelFunc),
		done:    make(chan struct{}),
	}
	c.limit.Store(int64(cfg.MaxMessageSize))
	if c.cfg.Outcome == nil {
		c.cfg.Outcome = rpc.Outcome
	}
	c.loops.Add(2)
	go c.readLoop()
	go c.writeLoop()
	return c
}

// SetMaxMessageSize lowers the limit on arguments and results to n, once
// the node has said what it is (configure); it never raises it above the
// limit given to New, which bounds what is read.
func (c *Channel) SetMaxMessageSize(n int) {
	if n > 0 && n < c.MaxMessageSize() {
		c.limit.Store(int64(n))
	}
}

// MaxMessageSize returns the limit on arguments and results.
func (c *Channel) MaxMessageSize() int { return int(c.limit.Load()) }

// Done is closed once the channel has ended; Err then says why.
func (c *Channel) Done() <-chan struct{} { return c.done }

// Err returns why the channel ended (io.EOF-like causes included), or nil
// while it runs.
func (c *Channel) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// InFlight returns how many of our calls await their replies.
func (c *Channel) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Call calls handle at the other end on behalf of (or addressed to) peer
// and returns the result. ctx's deadline travels with the call. When ctx is
// cancelled, the other end is told (a cancel message) and Call returns
// context.Canceled; when its deadline passes, Call returns
// context.DeadlineExceeded and sends nothing, since the other end's handler
// sees the same deadline pass on its own. A reply other than ok is an
// *rpc.Error carrying the other end's message (a deadline or cancellation
// without one is the context's error).
func (c *Channel) Call(ctx context.Context, peer trust.PeerID, handle string, args []byte) ([]byte, error) {
	m := wire.Message{Type: wire.TypeCall, Handle: handle}
	if err := c.check(ctx, &m, args); err != nil {
		return nil, err
	}
	ch := make(chan result, 1)
	c.mu.Lock()
	if err := c.refuseLocked(); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	c.nextID++
	m.ID = c.nextID
	c.pending[m.ID] = ch
	c.mu.Unlock()
	if err := c.push(&m, peer, args); err != nil {
		c.forget(m.ID)
		return nil, err
	}
	select {
	case r := <-ch:
		return r.body, r.err
	case <-ctx.Done():
	}
	if !c.forget(m.ID) { // the reply won the race
		r := <-ch
		return r.body, r.err
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		c.out.Push(c.encode(&wire.Message{Type: wire.TypeCancel, ID: m.ID}))
	}
	return nil, ctx.Err()
}

// Send hands a send to the other end and returns once it is queued; its
// outcome is not reported. ctx's deadline travels with it.
func (c *Channel) Send(ctx context.Context, peer trust.PeerID, handle string, args []byte) error {
	m := wire.Message{Type: wire.TypeSend, Handle: handle}
	if err := c.check(ctx, &m, args); err != nil {
		return err
	}
	c.mu.Lock()
	err := c.refuseLocked()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.push(&m, peer, args)
}

// check validates a call or send before anything is queued.
func (c *Channel) check(ctx context.Context, m *wire.Message, args []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if limit := c.MaxMessageSize(); len(args) > limit {
		return rpc.Errorf(rpc.StatusTooLarge, fmt.Sprintf("arguments to %q are %d bytes, limit %d", m.Handle, len(args), limit))
	}
	if err := wire.CheckHandle(m.Handle); err != nil {
		return rpc.Errorf(rpc.StatusBadRequest, err.Error())
	}
	if dl, ok := ctx.Deadline(); ok {
		if m.Timeout = time.Until(dl); m.Timeout <= 0 {
			return context.DeadlineExceeded
		}
	}
	return nil
}

func (c *Channel) refuseLocked() error {
	switch {
	case errors.Is(c.err, errRetiredBoth):
		return ErrRetired
	case c.err != nil:
		return c.lost(c.err)
	case c.retiring, c.retired && c.incoming == 0:
		// Between peers the receiver of a goaway replaced moves its new
		// calls elsewhere; here there is nowhere else, except that a
		// plugin finishing the node's calls may still call back.
		return ErrRetired
	}
	return nil
}

func (c *Channel) lost(cause error) error {
	if c.cfg.Lost != nil {
		return c.cfg.Lost(cause)
	}
	return cause
}

// push queues a call or send: the header and the peer key, then the args
// as they lie (the caller must not modify them). The key is the start of
// the body, so the length the header carries counts it: wire encodes the
// header for the args alone, and the key's length is added to it.
func (c *Channel) push(m *wire.Message, peer trust.PeerID, args []byte) error {
	m.Body = args
	head, err := wire.AppendHeader(make([]byte, 0, wire.CallOverhead+len(m.Handle)+wire.LengthSize+AddrSize), m, c.maxMsg-AddrSize)
	if err != nil {
		return rpc.Errorf(rpc.StatusBadRequest, "message does not encode: "+err.Error())
	}
	binary.BigEndian.PutUint32(head, binary.BigEndian.Uint32(head)+AddrSize)
	key := peer.Bytes()
	c.out.Push(frame{head: append(head, key[:]...), body: args})
	return nil
}

// encode encodes m with its body kept apart; a message that does not
// encode (it was checked before) yields an empty frame.
func (c *Channel) encode(m *wire.Message) frame {
	head, err := wire.AppendHeader(make([]byte, 0, wire.CallOverhead+len(m.Handle)+wire.LengthSize), m, c.maxMsg)
	if err != nil {
		c.cfg.Log.Error("encoding channel message", "type", m.Type, "error", err)
		return frame{}
	}
	return frame{head: head, body: m.Body}
}

// forget removes our call id; it reports whether the call was still
// waiting.
func (c *Channel) forget(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[id]
	delete(c.pending, id)
	c.checkRetiredLocked()
	return ok
}

// Retire starts a graceful end, as goaway replaced does between peers
// (§5.4): this end sends no new call or send; the other end answers what it
// has received, makes no new calls once its handlers have finished, and
// sends its own goaway; the channel closes once nothing is in flight in
// either direction. Done tells when.
func (c *Channel) Retire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.retiring && c.err == nil {
		c.sendGoawayLocked()
	}
	c.checkRetiredLocked()
}

func (c *Channel) sendGoawayLocked() {
	c.retiring = true
	c.out.Push(c.encode(&wire.Message{Type: wire.TypeGoaway, Code: wire.GoawayReplaced}))
}

// checkRetiredLocked moves a retirement on: once the other end has retired
// the channel and nothing is in flight here, this end sends its goaway if it
// has not yet, and the channel closes when that is written.
func (c *Channel) checkRetiredLocked() {
	if c.err != nil || c.closing || !c.retired || c.incoming > 0 || len(c.pending) > 0 {
		return
	}
	if !c.retiring {
		c.sendGoawayLocked()
	}
	c.closing = true
	go c.closeWhenFlushed()
}

// closeWhenFlushed ends the channel once our last replies are written.
func (c *Channel) closeWhenFlushed() {
	select {
	case <-c.out.Flushed():
	case <-c.done:
	}
	c.Close(errRetiredBoth)
}

var errRetiredBoth = errors.New("channel retired")

// Retired reports whether the channel ended by a completed retirement.
func (c *Channel) Retired() bool { return errors.Is(c.Err(), errRetiredBoth) }

// Close ends the channel at once: our calls in flight fail with
// cfg.Lost(cause), running handlers are cancelled, the connection is
// closed. It waits for the reader and writer, not for the handlers (Wait
// does). Calling it again does nothing.
func (c *Channel) Close(cause error) {
	c.end(cause)
	c.loops.Wait()
}

// Wait blocks until every handler the channel started has returned.
func (c *Channel) Wait() { c.handled.Wait() }

// end records cause, fails our calls and stops everything but does not
// wait.
func (c *Channel) end(cause error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = cause
	close(c.done)
	waiting := c.pending
	c.pending = make(map[uint64]chan result)
	c.mu.Unlock()
	err := c.lost(cause)
	for _, ch := range waiting {
		ch <- result{err: err}
	}
	c.cancel()
	_ = c.conn.Close()
}

func (c *Channel) writeLoop() {
	defer c.loops.Done()
	var bufs net.Buffers
	err := c.out.Run(c.done, batchLimit, func(f frame) int { return len(f.head) + len(f.body) }, func(fs []frame) error {
		bufs = bufs[:0]
		for _, f := range fs {
			bufs = append(bufs, f.head)
			if len(f.body) > 0 {
				bufs = append(bufs, f.body)
			}
		}
		if err := c.conn.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout)); err != nil {
			return err
		}
		b := bufs // WriteTo consumes its receiver
		_, err := b.WriteTo(c.conn)
		return err
	})
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("%s stopped reading the channel for %v", c.cfg.Name, c.cfg.WriteTimeout)
		}
		c.end(fmt.Errorf("writing: %w", err))
	}
}

func (c *Channel) readLoop() {
	defer c.loops.Done()
	dec := wire.NewDecoder(bufio.NewReaderSize(c.conn, readBuffer), c.maxMsg)
	dec.OwnLargeBodies()
	// Local statuses are at home here: the node passes on the outcomes of
	// a plugin's callbacks, and a plugin may answer one of them.
	dec.AcceptLocalStatuses()
	var m wire.Message
	for {
		if err := dec.Decode(&m); err != nil {
			c.mu.Lock()
			closing := c.closing
			c.mu.Unlock()
			if closing { // the other end closed first, as it may
				err = errRetiredBoth
			} else {
				err = readError(err)
			}
			c.end(err)
			return
		}
		if err := c.handle(dec, &m); err != nil {
			c.end(fmt.Errorf("protocol error: %w", err))
			return
		}
	}
}

func readError(err error) error {
	if errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrUnknownType) || errors.Is(err, wire.ErrMessageTooLarge) {
		return fmt.Errorf("protocol error: %w", err)
	}
	return fmt.Errorf("reading: %w", err)
}

// handle acts on one message from the other end.
func (c *Channel) handle(dec *wire.Decoder, m *wire.Message) error {
	switch m.Type {
	case wire.TypeCall, wire.TypeSend:
		return c.serve(dec, m)
	case wire.TypeReply:
		return c.reply(dec, m)
	case wire.TypeCancel:
		c.mu.Lock()
		cancel := c.running[m.ID]
		c.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	case wire.TypePing:
		c.out.Push(c.encode(&wire.Message{Type: wire.TypePong, Opaque: m.Opaque}))
	case wire.TypePong:
	case wire.TypeGoaway:
		if m.Code != wire.GoawayReplaced {
			return fmt.Errorf("goaway %v: %s", m.Code, m.Body)
		}
		c.mu.Lock()
		c.retired = true
		c.checkRetiredLocked()
		c.mu.Unlock()
	}
	return nil
}

func (c *Channel) reply(dec *wire.Decoder, m *wire.Message) error {
	c.mu.Lock()
	ch := c.pending[m.ID]
	delete(c.pending, m.ID)
	known := m.ID <= c.nextID
	c.checkRetiredLocked()
	c.mu.Unlock()
	if !known {
		return fmt.Errorf("reply to call %d, which was never made", m.ID)
	}
	if ch == nil {
		return nil // the caller gave up
	}
	st := rpc.Status(m.Status)
	if !st.Known() {
		return fmt.Errorf("reply with unknown status %d", m.Status)
	}
	body := dec.Take(m)
	switch {
	case st == rpc.StatusOK:
		if limit := c.MaxMessageSize(); len(body) > limit {
			ch <- result{err: rpc.Errorf(rpc.StatusTooLarge, fmt.Sprintf("result is %d bytes, limit %d", len(body), limit))}
			return nil
		}
		ch <- result{body: body}
	case (st == rpc.StatusDeadlineExceeded || st == rpc.StatusCanceled) && len(body) == 0:
		ch <- result{err: st.Err()}
	default:
		ch <- result{err: rpc.Errorf(st, string(body))}
	}
	return nil
}

// serve starts a handler for an incoming call or send, or answers at once.
func (c *Channel) serve(dec *wire.Decoder, m *wire.Message) error {
	if len(m.Body) < AddrSize {
		return fmt.Errorf("%v to %q without a peer key", m.Type, m.Handle)
	}
	peer, err := trust.PeerIDFromBytes(m.Body[:AddrSize])
	if err != nil && !isZero(m.Body[:AddrSize]) {
		return fmt.Errorf("%v to %q: %w", m.Type, m.Handle, err)
	}
	req := &rpc.Request{Caller: peer, Handle: m.Handle, Kind: rpc.KindCall}
	if m.Type == wire.TypeSend {
		req.Kind = rpc.KindSend
	}
	id := m.ID
	c.mu.Lock()
	if id != 0 {
		if _, dup := c.running[id]; dup {
			c.mu.Unlock()
			return fmt.Errorf("call id %d is already running", id)
		}
	}
	var refuse rpc.Status
	switch {
	case c.err != nil:
		c.mu.Unlock()
		return nil
	case c.cfg.Handler == nil:
		refuse = rpc.StatusUnavailable
	case c.incoming >= c.cfg.MaxIncoming:
		refuse = rpc.StatusOverloaded
	}
	if refuse != rpc.StatusOK {
		c.mu.Unlock()
		if id != 0 {
			c.answer(id, refuse, []byte(fmt.Sprintf("%d calls running", c.cfg.MaxIncoming)))
		} else {
			c.cfg.Log.Debug("send refused", "handle", m.Handle, "status", refuse)
		}
		return nil
	}
	var ctx context.Context
	var cancel context.CancelFunc
	if m.Timeout > 0 {
		ctx, cancel = context.WithTimeout(c.base, m.Timeout)
	} else {
		ctx, cancel = context.WithCancel(c.base)
	}
	c.incoming++
	if id != 0 {
		c.running[id] = cancel
	}
	c.handled.Add(1)
	c.mu.Unlock()

	args := dec.Take(m)[AddrSize:]
	if len(args) == 0 {
		args = nil
	}
	req.Args = args
	go c.run(ctx, cancel, id, req)
	return nil
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// run runs one handler and answers its call.
func (c *Channel) run(ctx context.Context, cancel context.CancelFunc, id uint64, req *rpc.Request) {
	defer c.handled.Done()
	st, body := c.invoke(ctx, req)
	cancel()
	c.mu.Lock()
	delete(c.running, id)
	c.incoming--
	ended := c.err != nil
	if id != 0 && !ended {
		c.answer(id, st, body)
	}
	c.checkRetiredLocked()
	c.mu.Unlock()
	if id == 0 && st != rpc.StatusOK {
		c.cfg.Log.Debug("send failed", "handle", req.Handle, "status", st, "error", string(body))
	}
}

// invoke runs the handler, turning its outcome, a panic included, into a
// reply's status and body.
func (c *Channel) invoke(ctx context.Context, req *rpc.Request) (st rpc.Status, body []byte) {
	defer func() {
		if v := recover(); v != nil {
			c.cfg.Log.Error("handler panicked", "handle", req.Handle, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			st, body = rpc.StatusHandlerCrashed, []byte(fmt.Sprint(v))
		}
	}()
	out, err := c.cfg.Handler(ctx, req)
	switch {
	case err == nil && req.Kind == rpc.KindSend:
		return rpc.StatusOK, nil
	case err == nil && len(out) > c.MaxMessageSize():
		return rpc.StatusTooLarge, fmt.Appendf(nil, "result of %q is %d bytes, limit %d", req.Handle, len(out), c.MaxMessageSize())
	case err == nil:
		return rpc.StatusOK, out
	}
	st, msg := c.cfg.Outcome(ctx, err)
	return st, []byte(cleanText(msg))
}

// maxErrorLen bounds the text of a reply other than ok.
const maxErrorLen = 4096

// cleanText makes s a reply's text: valid UTF-8, which the other end turns
// into a string, and at most maxErrorLen bytes.
func cleanText(s string) string {
	if len(s) > maxErrorLen {
		cut := maxErrorLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// answer queues the reply to call id. body is a result within the limit or
// a text within maxErrorLen.
func (c *Channel) answer(id uint64, st rpc.Status, body []byte) {
	c.out.Push(c.encode(&wire.Message{Type: wire.TypeReply, ID: id, Status: wire.Status(st), Body: body}))
}
