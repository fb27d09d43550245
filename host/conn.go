package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// flushTimeout bounds how long a closing connection tries to deliver its
// last queued messages (a goaway, final replies) to a peer that may have
// stopped reading.
const flushTimeout = time.Second

// conn is one authenticated connection to a peer. It owns two goroutines:
// the reader, which decodes and dispatches inbound messages, and the writer,
// which coalesces queued messages into as few records and syscalls as it can.
//
// Lock order: Node.mu, then any of conn's mutexes; conn never takes Node.mu
// while holding its own.
type conn struct {
	n       *Node
	sc      *wire.Conn
	peer    trust.PeerID
	dialed  bool          // we were the dialer
	started time.Duration // since n.epoch: when the dial began or the socket was accepted
	budget  *budget       // the peer's, shared by all of its connections
	log     hclog.Logger
	ctx     context.Context // cancelled when the connection closes; parent of handler contexts
	cancel  context.CancelFunc

	// Writer state, guarded by wmu. Senders append encoded messages to
	// queue; the writer swaps it out whole and writes it with one Write
	// (WriteBuffers, when large bodies follow their headers apart).
	wmu     sync.Mutex
	wready  sync.Cond // queue non-empty or closing
	wspace  sync.Cond // queue has room or closing
	queue   []byte
	queueP  *[]byte // the pooled holder of queue's array
	charged int     // bytes of queue and bodies charged to the peer's budget (replies)
	closing bool    // no more messages accepted; the writer flushes and exits
	err     error   // why the connection closed; set with closing
	// replacedSent is set when the goaway "replaced" is queued: no call or
	// send may follow it, or the peer could close the connection before
	// it arrives.
	replacedSent bool

	// bodies are the large message bodies (see directBodyMin) that follow
	// their headers in queue, each at its offset there; the writer writes
	// them from where they lie. bodiesLen counts their bytes, which count
	// against MaxWriteQueue like queue's. Guarded by wmu.
	bodies    []queuedBody
	bodiesLen int

	// Outbound calls in flight, guarded by pmu.
	pmu     sync.Mutex
	pending map[uint64]*pendingCall
	lastID  uint64

	// Inbound requests in flight, guarded by imu.
	imu     sync.Mutex
	inbound map[uint64]*reqCtx // calls only, for cancel messages
	running int                // calls and sends

	// Tie-break drain (see retire): both sides send goaway "replaced" on
	// the losing connection and close it once neither has work on it.
	retired     atomic.Bool // we sent goaway replaced
	peerRetired atomic.Bool // the peer sent goaway replaced

	dec *wire.Decoder // the reader's; only the reader uses it
	// The expectation of the handle last called, from the peer's budget:
	// a run of calls to one handle skips the budget's lock. Reader only.
	lastHandle string
	lastExpect *expectation

	// up is set while this connection carries the peer's "up": its up
	// event was emitted and its down event not yet. Guarded by Node.mu.
	up bool

	recv       atomic.Uint64 // messages received, for liveness
	writeStart atomic.Int64  // since n.epoch, while a write is in progress; else 0
	paused     atomic.Bool   // the reader waits for the peer's budget
	lastRecv   uint64        // recv at the last liveness tick; liveness loop only
	lastSeen   time.Duration // since n.epoch: the tick that last saw recv change; liveness loop only
	pinged     bool          // a ping is out since lastSeen; liveness loop only

	writerDone chan struct{}
}

// queuedBody is a message body that follows queue[:at] on the wire.
type queuedBody struct {
	at     int
	body   []byte
	pooled *[]byte // body's array if it is a copy from bodyPool
}

// directBodyMin is the smallest body queued apart from the write queue, so
// that appending it never grows (and so copies) the queue. A reply's body
// is written from where it lies: it is the handler's result, which the node
// owns once the handler returns. A call's or send's args are the caller's
// again once Call or Send returns, which may be before the writer gets to
// them, so they are copied once, into a buffer of their own.
const directBodyMin = 8 << 10

// pooledBodyMax is the largest copied body whose buffer is pooled: a
// 64 KiB payload and change. Larger ones get a buffer of their own.
const pooledBodyMax = 80 << 10

var bodyPool = sync.Pool{New: func() any { b := make([]byte, pooledBodyMax); return &b }}

// ownBody returns b itself for a reply, and a copy of b for anything else.
func ownBody(t wire.Type, b []byte) queuedBody {
	if t == wire.TypeReply {
		return queuedBody{body: b}
	}
	if len(b) > pooledBodyMax {
		return queuedBody{body: clone(b)}
	}
	p := bodyPool.Get().(*[]byte)
	return queuedBody{body: append((*p)[:0], b...), pooled: p}
}

type pendingCall struct {
	ch    chan callResult // buffered 1; exactly one result is ever sent
	timer *time.Timer     // the default call timeout; stopped while pooled
}

type callResult struct {
	status wire.Status
	body   []byte
	err    error // connection-level failure; status is meaningless
}

// Pending calls are pooled with their channel and timer, so a call
// allocates neither.
var pendingPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &pendingCall{ch: make(chan callResult, 1), timer: t}
}}

func newConn(n *Node, sc *wire.Conn, dialed bool, started time.Duration, b *budget) *conn {
	c := &conn{
		n:          n,
		sc:         sc,
		peer:       sc.RemotePeer(),
		dialed:     dialed,
		started:    started,
		budget:     b,
		lastSeen:   n.now(),
		pending:    make(map[uint64]*pendingCall),
		inbound:    make(map[uint64]*reqCtx),
		writerDone: make(chan struct{}),
	}
	c.log = n.log.With("peer", c.peer.Short())
	c.wready.L = &c.wmu
	c.wspace.L = &c.wmu
	c.ctx, c.cancel = context.WithCancel(n.ctx)
	return c
}

// start launches the reader and writer; both are counted in n.wg.
func (c *conn) start() {
	c.n.wg.Add(2)
	go func() {
		defer c.n.wg.Done()
		c.writeLoop()
	}()
	go func() {
		defer c.n.wg.Done()
		c.readLoop()
		<-c.writerDone
		c.n.connGone(c)
	}()
}

// enqueue encodes m onto the write queue. It blocks while the queue is full,
// until ctx is done. It fails with the connection's error once it is closing.
func (c *conn) enqueue(ctx context.Context, m *wire.Message) error {
	return c.push(ctx, m, true, 0)
}

// control queues a small message that must not wait for room: the reader
// sends pongs, the pinger pings, and a retiring connection its goaway, and
// none may block behind a full queue, or two peers that both stopped
// reading would wait on each other. A peer that lets even these pile up is not reading at all, and
// its connection is closed.
func (c *conn) control(m *wire.Message) {
	if err := c.push(context.Background(), m, false, -1); errors.Is(err, errNotReading) {
		c.log.Warn("closing connection: peer is not reading", "queued", c.n.cfg.MaxWriteQueue)
		c.shutdown(&connLostError{err}, false)
	}
}

var (
	errNotReading = errors.New("peer is not reading")
	errWriteStuck = errors.New("peer did not read within the write timeout")
)

// push appends m to the write queue. With wait, it blocks while the queue
// is over MaxWriteQueue (the node's own calls and sends). Without, charged
// < 0 is a control message, refused with errNotReading past twice that
// cap, and charged >= 0 a reply whose size is already reserved in the
// peer's budget: it never waits, as the budget bounds it.
func (c *conn) push(ctx context.Context, m *wire.Message, wait bool, charged int) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !wait && charged < 0 && !c.closing && c.ownQueued() > 2*c.n.cfg.MaxWriteQueue {
		return errNotReading
	}
	if wait && !c.closing && c.ownQueued() > c.n.cfg.MaxWriteQueue {
		stop := context.AfterFunc(ctx, func() {
			c.wmu.Lock()
			c.wspace.Broadcast()
			c.wmu.Unlock()
		})
		defer stop()
		for !c.closing && c.ownQueued() > c.n.cfg.MaxWriteQueue && ctx.Err() == nil {
			c.wspace.Wait()
		}
		if err := ctx.Err(); err != nil && !c.closing {
			return err
		}
	}
	isRequest := m.Type == wire.TypeCall || m.Type == wire.TypeSend
	if isRequest && (c.replacedSent || c.closing && isReplaced(c.err)) {
		// Whatever else closed it since, the peer has been told, or
		// knows, that no request follows on this connection.
		return errRetired
	}
	if c.closing {
		return c.err
	}
	wasEmpty := len(c.queue) == 0
	if c.queue == nil {
		c.queueP = getBuf()
		c.queue = *c.queueP
	}
	// What we send is bounded by the peer's limit, not ours (§5).
	var err error
	if len(m.Body) >= directBodyMin && m.Type != wire.TypeGoaway {
		err = c.queueApart(m)
	} else {
		c.queue, err = wire.AppendMessage(c.queue, m, c.sc.PeerMaxMessageSize())
	}
	if err != nil {
		return queueErr(err)
	}
	if charged > 0 {
		c.charged += charged
	}
	if m.Type == wire.TypeGoaway && m.Code == wire.GoawayReplaced {
		c.replacedSent = true
	}
	if wasEmpty {
		c.wready.Signal()
	}
	return nil
}

// errRetired refuses a call or send on a connection that has told the
// peer it is replaced, or has closed after a tie-break: the peer may close
// it as soon as the calls it knows of are done, so the request must go on
// the connection that replaced it.
var errRetired = errors.New("host: connection replaced")

// coalesceBelow is the queue size under which the writer yields once
// before writing, so that callers and handlers that are runnable now add
// their messages to the same write: one syscall for many messages.
const coalesceBelow = 4 << 10

// queueApart queues m's header and m's body apart from it (see
// directBodyMin); c.wmu is held. It and queueErr are kept out of push, which
// every small reply runs on a fresh handler goroutine: a larger frame there
// would make those small stacks grow, at a cost per call.
//
//go:noinline
func (c *conn) queueApart(m *wire.Message) error {
	q, err := wire.AppendHeader(c.queue, m, c.sc.PeerMaxMessageSize())
	if err != nil {
		return err
	}
	c.queue = q
	b := ownBody(m.Type, m.Body)
	b.at = len(q)
	c.bodies = append(c.bodies, b)
	if b.pooled != nil {
		c.bodiesLen += cap(b.body) // what the copy holds, not what it uses
	} else {
		c.bodiesLen += len(b.body)
	}
	return nil
}

// queueErr is why a message could not be queued: ErrTooLarge (matching
// wire.ErrMessageTooLarge too) when it exceeds the peer's limit.
//
//go:noinline
func queueErr(err error) error {
	if errors.Is(err, wire.ErrMessageTooLarge) {
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	return err
}

// queued is the number of bytes waiting for the writer; c.wmu is held.
func (c *conn) queued() int { return len(c.queue) + c.bodiesLen }

// ownQueued is the part of queued that the peer's budget does not bound:
// this node's calls and sends and the control messages, which
// MaxWriteQueue caps. The peer's replies are bounded by its budget, and a
// slow reader's replies must not hold up our pongs or our own calls.
// c.wmu is held.
func (c *conn) ownQueued() int { return c.queued() - c.charged }

func (c *conn) writeLoop() {
	defer close(c.writerDone)
	// The writer's spare list of bodies, swapped with c.bodies at each
	// write, and the buffers of one write: both reused.
	var spare []queuedBody
	var bufs, chunk [][]byte
	for {
		c.wmu.Lock()
		for len(c.queue) == 0 && !c.closing {
			c.wready.Wait()
		}
		if len(c.queue) == 0 {
			c.wmu.Unlock()
			break
		}
		if c.queued() < coalesceBelow && !c.closing {
			c.wmu.Unlock()
			runtime.Gosched()
			c.wmu.Lock()
		}
		out, outP, bodies, charged := c.queue, c.queueP, c.bodies, c.charged
		c.queue, c.queueP, c.bodies, c.bodiesLen, c.charged = nil, nil, spare[:0], 0, 0
		c.wspace.Broadcast()
		c.wmu.Unlock()

		var err error
		if len(bodies) == 0 && len(out) <= writeChunk {
			c.writeStart.Store(int64(c.n.now()))
			_, err = c.sc.Write(out)
		} else {
			bufs = bufs[:0]
			prev := 0
			for _, b := range bodies {
				bufs = append(bufs, out[prev:b.at], b.body)
				prev = b.at
			}
			bufs = append(bufs, out[prev:])
			chunk, err = c.writeChunks(bufs, chunk)
			clear(bufs) // drop the bodies: they may be large
			for _, b := range bodies {
				if b.pooled != nil {
					bodyPool.Put(b.pooled)
				}
			}
			clear(bodies)
		}
		c.writeStart.Store(0)
		spare = bodies[:0]
		putBuf(outP, out)
		c.budget.release(charged)
		if err != nil {
			c.shutdown(connErr(err), false)
			break
		}
	}
	// What is still queued will never be written: give it back.
	c.wmu.Lock()
	c.budget.release(c.charged)
	c.charged = 0
	c.wmu.Unlock()
	c.sc.Close()
}

// writeChunk is the most the writer hands the connection in one call. The
// write timeout restarts with each call, so it measures how long the peer
// lets a write make no progress, not how long a large batch takes on a
// slow link.
const writeChunk = 1 << 20

// writeChunks writes bufs in calls of at most writeChunk bytes, stamping
// the start of each, with chunk as scratch space; it returns chunk for
// reuse. Splitting a buffer only starts a new record: the bytes on the
// wire are a stream.
func (c *conn) writeChunks(bufs, chunk [][]byte) ([][]byte, error) {
	chunk, n := chunk[:0], 0
	flush := func() error {
		c.writeStart.Store(int64(c.n.now()))
		_, err := c.sc.WriteBuffers(chunk)
		clear(chunk)
		chunk, n = chunk[:0], 0
		return err
	}
	for _, b := range bufs {
		for len(b) > 0 {
			k := min(len(b), writeChunk-n)
			chunk, n, b = append(chunk, b[:k]), n+k, b[k:]
			if n == writeChunk {
				if err := flush(); err != nil {
					return chunk, err
				}
			}
		}
	}
	var err error
	if n > 0 {
		err = flush()
	}
	return chunk, err
}

func (c *conn) readLoop() {
	dec := wire.NewDecoder(c.sc, c.n.cfg.MaxMessageSize)
	// Every body the reader dispatches is kept (args for the handler, a
	// result for the caller): large ones are decoded into buffers of
	// their own and handed over rather than copied.
	dec.OwnLargeBodies()
	c.dec = dec
	var m wire.Message
	for {
		if err := dec.Decode(&m); err != nil {
			if isProtocolErr(err) {
				c.log.Warn("closing connection: protocol error", "error", err)
				c.shutdownWith(err, wire.GoawayProtocolError, err.Error())
			} else {
				c.shutdown(connErr(err), false)
			}
			return
		}
		c.recv.Add(1)
		switch m.Type {
		case wire.TypeCall, wire.TypeSend:
			kind := KindCall
			if m.Type == wire.TypeSend {
				kind = KindSend
			}
			if err := c.handleRequest(&m, kind); err != nil {
				c.log.Warn("closing connection: protocol error", "error", err)
				c.shutdownWith(err, wire.GoawayProtocolError, err.Error())
				return
			}
			if c.budget.over() && !c.pause() {
				return
			}
		case wire.TypeReply:
			c.handleReply(&m)
		case wire.TypeCancel:
			c.imu.Lock()
			rc := c.inbound[m.ID]
			c.imu.Unlock()
			if rc != nil {
				rc.cancel(context.Canceled)
			}
		case wire.TypePing:
			c.control(&wire.Message{Type: wire.TypePong, Opaque: m.Opaque})
		case wire.TypePong:
			// Receiving it was the point.
		case wire.TypeGoaway:
			if m.Code == wire.GoawayReplaced {
				c.peerRetired.Store(true)
				c.maybeFinishRetire()
				continue
			}
			c.log.Debug("peer sent goaway", "code", m.Code, "reason", string(m.Body))
			err := &GoawayError{Code: m.Code, Reason: string(m.Body)}
			c.shutdown(err, false)
			return
		}
	}
}

// GoawayError is the reason a connection closed when the peer closed it
// with a goaway message. It matches ErrConnLost.
type GoawayError struct {
	Code   wire.GoawayCode
	Reason string
}

func (e *GoawayError) Error() string {
	if e.Reason == "" {
		return "host: peer closed the connection: " + e.Code.String()
	}
	return "host: peer closed the connection: " + e.Code.String() + ": " + e.Reason
}

// Is makes a GoawayError match ErrConnLost, and ErrNotTrustedByPeer when the
// peer dropped us from its trust list.
func (e *GoawayError) Is(target error) bool {
	return target == ErrConnLost || (target == ErrNotTrustedByPeer && e.Code == wire.GoawayUntrusted)
}

func isProtocolErr(err error) bool {
	return errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrUnknownType) || errors.Is(err, wire.ErrMessageTooLarge)
}

// connErr turns a transport error into the error pending calls see.
func connErr(err error) error {
	if errors.Is(err, ErrConnLost) || errors.Is(err, ErrClosed) {
		return err
	}
	return &connLostError{err}
}

type connLostError struct{ err error }

func (e *connLostError) Error() string { return "connection_lost: " + e.err.Error() }
func (e *connLostError) Unwrap() error { return e.err }
func (e *connLostError) Is(target error) bool {
	return target == ErrConnLost
}

// pause stops reading while the peer's budget is exceeded: the peer's
// writes then back up into TCP, and it holds its own memory, not ours. It
// reports false if the connection closed meanwhile.
func (c *conn) pause() bool {
	c.paused.Store(true)
	ok := c.budget.wait(c.ctx)
	c.paused.Store(false)
	return ok
}

// errDuplicateID is the protocol error of a call whose id is already in
// flight on the connection (protocol §5.3).
var errDuplicateID = fmt.Errorf("%w: call id already in flight", wire.ErrMalformed)

// handleRequest admits an inbound call or send and runs it in its own
// goroutine. Rejections are answered from the reader without a goroutine.
// It fails only for a protocol error, which ends the connection.
func (c *conn) handleRequest(m *wire.Message, kind Kind) error {
	reject := func(st wire.Status, msg string) {
		handle := m.Handle
		if st == wire.StatusNoSuchHandle {
			handle = ""
		}
		c.n.cfg.Observer.Served(handle, kind, st, 0)
		if kind == KindCall {
			// Charged like any reply: a peer that floods refused calls
			// and never reads is paused by its budget, not queued for.
			size := wire.ReplyOverhead + len(msg)
			c.budget.charge(size)
			if err := c.push(context.Background(), &wire.Message{Type: wire.TypeReply, ID: m.ID, Status: st, Body: []byte(msg)}, false, size); err != nil {
				c.budget.release(size)
			}
		}
	}
	c.imu.Lock()
	if kind == KindCall && c.inbound[m.ID] != nil {
		c.imu.Unlock()
		return errDuplicateID
	}
	switch c.n.state.Load() {
	case holding:
		c.imu.Unlock()
		reject(wire.StatusUnavailable, "node is starting")
		return nil
	case draining:
		c.imu.Unlock()
		reject(wire.StatusUnavailable, "node is shutting down")
		return nil
	}
	if c.budget.inflight.Add(1) > int64(c.n.cfg.MaxInflightPerPeer) {
		c.budget.inflight.Add(-1)
		c.imu.Unlock()
		reject(wire.StatusOverloaded, "too many requests in flight from this peer")
		return nil
	}
	e, st := c.n.admit(c.peer, m.Handle)
	if st != wire.StatusOK {
		c.budget.inflight.Add(-1)
		c.imu.Unlock()
		reject(st, "")
		return nil
	}
	var reserved int
	var expect *expectation
	if kind == KindCall {
		if c.lastExpect == nil || c.lastHandle != e.handle {
			c.lastHandle, c.lastExpect = e.handle, c.budget.expectation(e.handle)
		}
		expect = c.lastExpect
		if reserved = c.budget.reservation(expect); !c.budget.reserve(reserved) {
			e.release()
			c.budget.inflight.Add(-1)
			c.imu.Unlock()
			reject(wire.StatusOverloaded, "this peer's memory budget is taken by its calls in flight and unread replies")
			return nil
		}
	}
	c.running++
	in := &inbound{c: c, e: e, id: m.ID, reserved: reserved, expect: expect}
	c.budget.charge(len(m.Body))
	in.req = Request{Caller: c.peer, Handle: e.handle, Kind: kind, Args: c.dec.Take(m)}
	in.ctx.parent = c.ctx
	if m.Timeout > 0 {
		in.ctx.deadline = time.Now().Add(m.Timeout)
	}
	if kind == KindCall {
		c.inbound[m.ID] = &in.ctx
	}
	c.imu.Unlock()
	c.n.wg.Add(1)
	go in.run()
	if kind == KindCall && expect.size.Load() == 0 {
		// Until one of the peer's calls to this handle has returned, its
		// expected reply size is a guess: let the handler run before
		// admitting the next call, so that a burst of calls to a handler
		// with large results is held back once the first result is in.
		runtime.Gosched()
	}
	return nil
}

// inbound is one admitted request: everything its goroutine needs, in one
// allocation.
type inbound struct {
	c        *conn
	e        *exposed
	id       uint64
	reserved int          // budget bytes reserved for the reply
	expect   *expectation // of the reply, for a call: learns its size
	req      Request
	ctx      reqCtx
}

func (in *inbound) run() {
	c := in.c
	defer c.n.wg.Done()
	start := time.Now()
	argsLen := len(in.req.Args)
	body, st := in.e.serve(&in.ctx, &in.req)
	c.n.cfg.Observer.Served(in.req.Handle, in.req.Kind, st, time.Since(start))
	c.budget.release(argsLen)
	c.imu.Lock()
	_, live := c.inbound[in.id]
	delete(c.inbound, in.id)
	c.imu.Unlock()
	callerGone := in.ctx.Err() == context.Canceled
	in.ctx.cancel(context.Canceled)
	if in.req.Kind == KindCall && live && !callerGone {
		if len(body)+wire.ReplyOverhead > c.sc.PeerMaxMessageSize() {
			body, st = []byte("result exceeds the maximum message size"), wire.StatusTooLarge
		}
		c.reply(in.expect, in.id, st, body, in.reserved)
	} else {
		c.budget.release(in.reserved)
	}
	// Only now, with the reply queued, is the request done: its slots
	// bound what the peer holds, and a retired connection that saw no
	// request running could close before the reply went out.
	in.e.release()
	c.budget.inflight.Add(-1)
	c.imu.Lock()
	c.running--
	c.imu.Unlock()
	c.maybeFinishRetire()
}

// reply queues a reply without waiting, turning the reserved bytes of the
// budget into the reply's, which stay charged until written. A reply that
// does not fit is replaced by a short "overloaded" one, so that neither the
// handler's goroutine nor its result outlives the handler while a peer
// does not read.
func (c *conn) reply(expect *expectation, id uint64, st wire.Status, body []byte, reserved int) {
	size := wire.ReplyOverhead + len(body)
	b := c.budget
	expect.learn(size)
	switch {
	case size <= reserved:
		b.release(reserved - size)
	case b.reserve(size - reserved):
	default:
		b.full.Store(true)
		b.release(reserved)
		body, st = []byte("reply does not fit in this peer's memory budget: too much unread"), wire.StatusOverloaded
		size = wire.ReplyOverhead + len(body)
		b.charge(size)
	}
	m := wire.Message{Type: wire.TypeReply, ID: id, Status: st, Body: body}
	if err := c.push(context.Background(), &m, false, size); err != nil {
		c.budget.release(size)
		if !c.isClosing() {
			c.log.Warn("dropping reply", "id", id, "error", err)
		}
	}
}

func (c *conn) handleReply(m *wire.Message) {
	c.pmu.Lock()
	pc := c.pending[m.ID]
	delete(c.pending, m.ID)
	c.pmu.Unlock()
	if pc == nil {
		return // cancelled or timed out; the spec says ignore it
	}
	pc.ch <- callResult{status: m.Status, body: c.dec.Take(m)}
	c.maybeFinishRetire()
}

// call sends a call and waits for its reply, ctx, the connection's end, or
// timeout if it is positive (the default timeout of a ctx without deadline).
func (c *conn) call(ctx context.Context, handle string, args []byte, timeout time.Duration) (callResult, error) {
	// A connection that is closing refuses the call in push, which
	// decides for calls and sends alike whether it may be retried.
	pc := pendingPool.Get().(*pendingCall)
	c.pmu.Lock()
	c.lastID++
	id := c.lastID
	c.pending[id] = pc
	c.pmu.Unlock()

	m := wire.Message{Type: wire.TypeCall, ID: id, Handle: handle, Body: args, Timeout: timeout}
	var expired <-chan time.Time
	if timeout > 0 {
		pc.timer.Reset(timeout)
		expired = pc.timer.C
	} else if d, ok := ctx.Deadline(); ok {
		if m.Timeout = time.Until(d); m.Timeout <= 0 {
			m.Timeout = time.Millisecond
		}
	}
	if err := c.enqueue(ctx, &m); err != nil {
		pc.timer.Stop()
		if c.forget(id) {
			pendingPool.Put(pc)
		} // else a result is on its way; let pc go to the GC
		return callResult{}, err
	}
	var gaveUp error
	select {
	case r := <-pc.ch:
		pc.timer.Stop()
		pendingPool.Put(pc)
		return r, r.err
	case <-ctx.Done():
		gaveUp = ctx.Err()
	case <-expired:
		gaveUp = context.DeadlineExceeded
	}
	pc.timer.Stop()
	if c.forget(id) {
		c.control(&wire.Message{Type: wire.TypeCancel, ID: id})
	} else {
		<-pc.ch // the result raced us; drain so pc can be reused
	}
	pendingPool.Put(pc)
	return callResult{}, gaveUp
}

// forget removes a pending call and reports whether it was still pending
// (and so will never receive a result).
func (c *conn) forget(id uint64) bool {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	_, ok := c.pending[id]
	delete(c.pending, id)
	return ok
}

func (c *conn) send(ctx context.Context, handle string, args []byte) error {
	m := wire.Message{Type: wire.TypeSend, Handle: handle, Body: args}
	return c.enqueue(ctx, &m)
}

func (c *conn) ping() {
	c.control(&wire.Message{Type: wire.TypePing, Opaque: c.recv.Load()})
}

func (c *conn) isClosing() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.closing
}

func (c *conn) closeErr() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.err
}

// shutdown closes the connection for err, without a goaway when the
// transport is already broken. It fails every pending call with err at once
// and cancels every running handler. Safe to call many times; the first
// error wins.
func (c *conn) shutdown(err error, goaway bool) {
	if goaway {
		c.shutdownWith(err, wire.GoawayNormal, "")
		return
	}
	c.close(err, nil)
}

func (c *conn) shutdownWith(err error, code wire.GoawayCode, reason string) {
	if reason == "" {
		reason = goawayReason(code, err)
	}
	c.close(err, &wire.Message{Type: wire.TypeGoaway, Code: code, Body: []byte(reason)})
}

// goawayReason is the text a goaway carries when the caller gave none
// (docs/protocol.md §5.1): for a human on the other side, never parsed.
func goawayReason(code wire.GoawayCode, err error) string {
	switch {
	case code == wire.GoawayNormal && errors.Is(err, ErrClosed):
		return "node is shutting down"
	case code == wire.GoawayUntrusted:
		return "you are not on this node's trust list any more"
	case code == wire.GoawayReplaced:
		return replacedReason
	}
	return err.Error()
}

const replacedReason = "replaced by another connection between the same two peers"

func (c *conn) close(err error, goaway *wire.Message) {
	c.wmu.Lock()
	if c.closing {
		c.wmu.Unlock()
		return
	}
	if goaway != nil {
		if c.queue == nil {
			c.queueP = getBuf()
			c.queue = *c.queueP
		}
		c.queue, _ = wire.AppendMessage(c.queue, goaway, c.sc.PeerMaxMessageSize())
	}
	c.closing = true
	c.err = err
	c.wready.Broadcast()
	c.wspace.Broadcast()
	c.wmu.Unlock()

	// A peer that stopped reading must not hold the writer forever.
	if errors.Is(err, errWriteStuck) {
		c.sc.SetWriteDeadline(time.Now())
	} else {
		c.sc.SetWriteDeadline(time.Now().Add(flushTimeout))
	}
	c.cancel()
	if c.paused.Load() {
		c.budget.wake()
	}

	c.pmu.Lock()
	pending := c.pending
	c.pending = make(map[uint64]*pendingCall)
	c.pmu.Unlock()
	for _, pc := range pending {
		pc.ch <- callResult{err: err}
	}
}

// retire marks c as the loser of a tie-break: we send no new calls on it and
// tell the peer so; it closes once both sides have said so and neither has
// work left on it.
func (c *conn) retire() {
	if c.retired.Swap(true) {
		return
	}
	c.control(&wire.Message{Type: wire.TypeGoaway, Code: wire.GoawayReplaced, Body: []byte(replacedReason)})
	c.maybeFinishRetire()
	// Bound the drain: a peer that never says "replaced" too does not keep
	// the connection forever.
	t := time.AfterFunc(2*c.n.cfg.CallTimeout, func() {
		c.shutdown(errReplaced, false)
	})
	context.AfterFunc(c.ctx, func() { t.Stop() })
}

// The reasons a connection is replaced: by the key tie-break, or by a
// fresh connection from the side that dialled this one. Requests not yet
// sent on it go to the connection that replaced it (errRetired).
var (
	errReplaced      = &connLostError{errors.New("replaced by another connection to the same peer")}
	errReplacedFresh = &connLostError{errors.New("replaced by a fresh connection from the peer that dialled this one")}
)

func isReplaced(err error) bool { return err == errReplaced || err == errReplacedFresh }

func (c *conn) maybeFinishRetire() {
	if !c.retired.Load() || !c.peerRetired.Load() {
		return
	}
	c.pmu.Lock()
	idle := len(c.pending) == 0
	c.pmu.Unlock()
	c.imu.Lock()
	idle = idle && c.running == 0
	c.imu.Unlock()
	if idle {
		c.shutdown(errReplaced, false)
	}
}

// remoteAddr is the peer's address as seen on this connection.
func (c *conn) remoteAddr() net.Addr { return c.sc.RemoteAddr() }

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// Write queues are pooled so that an idle connection holds none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func getBuf() *[]byte {
	p := bufPool.Get().(*[]byte)
	*p = (*p)[:0]
	return p
}

// putBuf returns a queue to the pool; b is the queue's array as it grew.
func putBuf(p *[]byte, b []byte) {
	*p = b[:0]
	bufPool.Put(p)
}
