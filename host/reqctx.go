package host

import (
	"context"
	"sync"
	"time"
)

// reqCtx is the context of an inbound request. Most handlers finish without
// ever waiting on ctx.Done, so reqCtx arms nothing until Done (or
// AfterFunc, which context.WithCancel and friends use) is first called:
// a request costs no timer and no registration with the connection's
// context unless its handler waits. Err and Deadline are exact either way.
type reqCtx struct {
	parent   context.Context // the connection's context
	deadline time.Time       // zero: none of its own

	mu    sync.Mutex
	err   error         // set once by cancel
	done  chan struct{} // made by the first Done; closed by cancel
	timer *time.Timer   // armed with done, for the deadline
	stop  func() bool   // detaches the parent, once armed
	funcs map[*afterFunc]struct{}
}

type afterFunc struct{ f func() }

var _ context.Context = (*reqCtx)(nil)

func (r *reqCtx) Deadline() (time.Time, bool) {
	if r.deadline.IsZero() {
		return r.parent.Deadline()
	}
	return r.deadline, true
}

func (r *reqCtx) Value(key any) any { return r.parent.Value(key) }

func (r *reqCtx) Err() error {
	r.mu.Lock()
	err := r.err
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if err := r.parent.Err(); err != nil {
		return err
	}
	if !r.deadline.IsZero() && !time.Now().Before(r.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (r *reqCtx) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armLocked()
	return r.done
}

// armLocked makes the done channel and starts watching the parent and the
// deadline. r.mu held.
func (r *reqCtx) armLocked() {
	if r.done != nil {
		return
	}
	r.done = make(chan struct{})
	if r.err != nil {
		close(r.done)
		return
	}
	r.stop = context.AfterFunc(r.parent, func() { r.cancel(r.parent.Err()) })
	if !r.deadline.IsZero() {
		r.timer = time.AfterFunc(time.Until(r.deadline), func() { r.cancel(context.DeadlineExceeded) })
	}
}

// AfterFunc arranges for f to run in its own goroutine once r is done, as
// context.AfterFunc does; the context package uses it to tie derived
// contexts to r without a goroutine each.
func (r *reqCtx) AfterFunc(f func()) (stop func() bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armLocked()
	if r.err != nil {
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f}
	if r.funcs == nil {
		r.funcs = make(map[*afterFunc]struct{})
	}
	r.funcs[a] = struct{}{}
	return func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		_, ok := r.funcs[a]
		delete(r.funcs, a)
		return ok
	}
}

// cancel ends r with err (the first error wins) and releases what arming
// took. Safe to call more than once and from any goroutine.
func (r *reqCtx) cancel(err error) {
	r.mu.Lock()
	if r.err != nil {
		r.mu.Unlock()
		return
	}
	r.err = err
	if r.done != nil {
		close(r.done)
	}
	funcs := r.funcs
	r.funcs = nil
	stop, timer := r.stop, r.timer
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
	if timer != nil {
		timer.Stop()
	}
	for a := range funcs {
		go a.f()
	}
}
