package host

import (
	"context"
	"sync"
	"sync/atomic"
)

// budget is one peer's share of the node, counted across all of its
// connections so that a peer gains nothing by opening more: the memory its
// requests and unread replies hold (Config.MaxPeerMemory) and its requests
// running (Config.MaxInflightPerPeer). A budget belongs to the peer's
// state; connections keep a pointer to it, so a connection that outlives
// its peer's state (untrusted while closing) still balances its account.
//
// A handler's result is memory too, before it is queued: so each call
// admitted reserves the reply it is expected to produce (see expectation),
// and a peer whose replies do not drain gets no more handlers running than
// the budget holds results for: a call that cannot reserve its reply is
// answered "overloaded" at once. A reply that does not fit marks the
// budget full, which pauses reading until half the budget is free.
type budget struct {
	limit    int64
	floor    int64        // the least a call reserves for its reply: limit / MaxInflightPerPeer
	used     atomic.Int64 // args and expected replies of running requests + replies queued, not yet written
	inflight atomic.Int64 // inbound calls and sends admitted and not finished
	full     atomic.Bool  // a reply did not fit: paused until half the budget is free

	// expects holds the peer's expectation for each handle it calls.
	expectMu sync.Mutex
	expects  map[string]*expectation

	// Readers paused for room wait on room; release wakes them only when
	// someone waits, so the common path is three atomic operations.
	waiters atomic.Int32
	mu      sync.Mutex
	room    sync.Cond
}

func newBudget(limit, maxInflight int) *budget {
	b := &budget{limit: int64(limit), floor: int64(limit / max(maxInflight, 1))}
	b.room.L = &b.mu
	return b
}

// reserve takes n bytes if they fit in the budget and reports whether they
// did.
func (b *budget) reserve(n int) bool {
	for {
		u := b.used.Load()
		if u+int64(n) > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+int64(n)) {
			return true
		}
	}
}

// charge takes n bytes whether or not they fit: the caller holds them
// already (a request read off the wire), and over is what pauses reading.
func (b *budget) charge(n int) { b.used.Add(int64(n)) }

func (b *budget) over() bool { return b.used.Load() > b.limit || b.full.Load() }

// expectation is the size of reply that one peer's calls to one handle are
// expected to produce: the largest recent one, decaying; 0 before the
// first. Learned per handle, so that small replies from one handle cannot
// lower what calls to another reserve; and per peer, so that one peer's
// large results do not limit what another may run.
type expectation struct{ size atomic.Int64 }

// maxExpectations bounds the handles a budget remembers; past it, it
// forgets them all and learns again. Only exposed handles are learned, so
// this is reached only by a node exposing that many.
const maxExpectations = 1024

// expectation returns the peer's expectation for handle.
func (b *budget) expectation(handle string) *expectation {
	b.expectMu.Lock()
	defer b.expectMu.Unlock()
	x := b.expects[handle]
	if x == nil {
		if b.expects == nil || len(b.expects) >= maxExpectations {
			b.expects = make(map[string]*expectation)
		}
		x = new(expectation)
		b.expects[handle] = x
	}
	return x
}

// reservation is what an admitted call with expectation x reserves for its
// reply.
func (b *budget) reservation(x *expectation) int { return int(max(x.size.Load(), b.floor)) }

// learn records a reply of n bytes: the expectation rises to a larger
// reply at once and decays by an eighth per smaller one.
func (x *expectation) learn(n int) {
	e := x.size.Load()
	next := max(int64(n), e-e/8)
	if next != e {
		x.size.Store(next) // racing updates may lose one; it is an estimate
	}
}

// release returns n bytes and wakes paused readers once the budget has room.
func (b *budget) release(n int) {
	if n == 0 {
		return
	}
	u := b.used.Add(-int64(n))
	if b.full.Load() && u <= b.limit/2 {
		b.full.Store(false)
	}
	if u <= b.limit && b.waiters.Load() > 0 {
		b.wake()
	}
}

func (b *budget) wake() {
	b.mu.Lock()
	b.room.Broadcast()
	b.mu.Unlock()
}

// wait blocks while the budget is exceeded, until ctx is done (the
// connection closes; whoever cancels it must call wake). It reports whether
// there is room.
func (b *budget) wait(ctx context.Context) bool {
	b.mu.Lock()
	b.waiters.Add(1)
	for b.over() && ctx.Err() == nil {
		b.room.Wait()
	}
	b.waiters.Add(-1)
	b.mu.Unlock()
	return ctx.Err() == nil
}
