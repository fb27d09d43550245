package host

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// The request model is package rpc's, re-exported so that an embedder
// needs only this package; a plugin's handlers (package pluginsdk) are the
// same types.
type (
	// Kind says whether a request is a call or a send.
	Kind = rpc.Kind
	// Request is one inbound call or send as a handler sees it.
	Request = rpc.Request
	// Handler answers requests for an exposed handle; see rpc.Handler for
	// how its error and panics reach the caller.
	Handler = rpc.Handler
	// HandlerFunc adapts a function to Handler.
	HandlerFunc = rpc.HandlerFunc
)

// The kinds of request.
const (
	KindCall = rpc.KindCall
	KindSend = rpc.KindSend
)

// ExposeOptions is a handle's policy: who may use it and within what limits.
// The same type carries a handle's settings from the configuration file
// through the plugin supervisor to the node. The zero value admits every
// trusted peer with the default concurrency and no timeout of its own.
type ExposeOptions struct {
	// Allow says which trusted peers may use the handle; others get
	// "forbidden". The zero value admits every trusted peer.
	Allow AllowList

	// Authorize, if set, is asked for every request after Allow; false
	// answers "forbidden". It must be fast and safe for concurrent use.
	Authorize func(caller trust.PeerID, handle string) bool `json:"-"`

	// MaxConcurrent caps requests running at once for this handle; excess
	// requests are answered "overloaded" at once. Default
	// DefaultMaxConcurrent; negative means no cap.
	MaxConcurrent int

	// Timeout bounds each request, on top of the caller's own deadline.
	// Zero means only the caller's deadline applies.
	Timeout time.Duration
}

// Equal reports whether o and p are the same policy. Options with an
// Authorize predicate are never equal (functions cannot be compared), so a
// caller that re-exposes on inequality re-exposes them every time.
func (o ExposeOptions) Equal(p ExposeOptions) bool {
	return o.Authorize == nil && p.Authorize == nil && o.Allow.Equal(p.Allow) &&
		o.MaxConcurrent == p.MaxConcurrent && o.Timeout == p.Timeout
}

// exposed is a registration, immutable but for its counter; Expose
// replaces the whole value.
type exposed struct {
	handle   string
	h        Handler
	allow    AllowList
	auth     func(trust.PeerID, string) bool
	max      int64 // <= 0: no cap
	timeout  time.Duration
	inflight atomic.Int64
}

func validHandle(handle string) error {
	if err := wire.CheckHandle(handle); err != nil {
		return fmt.Errorf("%w: %w", ErrBadHandle, err)
	}
	return nil
}

// Expose registers h for handle, replacing any earlier registration
// atomically: requests already running finish on the old handler, the next
// one uses h. Safe for concurrent use.
func (n *Node) Expose(handle string, h Handler, opts ExposeOptions) error {
	if err := validHandle(handle); err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("host: Expose %q: nil handler", handle)
	}
	e := &exposed{handle: handle, h: h, allow: opts.Allow, auth: opts.Authorize, timeout: opts.Timeout}
	switch {
	case opts.MaxConcurrent == 0:
		e.max = DefaultMaxConcurrent
	case opts.MaxConcurrent > 0:
		e.max = int64(opts.MaxConcurrent)
	}
	n.handlersMu.Lock()
	defer n.handlersMu.Unlock()
	old := *n.handlers.Load()
	next := make(map[string]*exposed, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[handle] = e
	n.handlers.Store(&next)
	return nil
}

// Revoke closes handle: the next request for it is answered "no such
// handle"; requests already running finish. It reports whether the handle
// was exposed. Safe for concurrent use.
func (n *Node) Revoke(handle string) bool {
	n.handlersMu.Lock()
	defer n.handlersMu.Unlock()
	old := *n.handlers.Load()
	if _, ok := old[handle]; !ok {
		return false
	}
	next := make(map[string]*exposed, len(old))
	for k, v := range old {
		if k != handle {
			next[k] = v
		}
	}
	n.handlers.Store(&next)
	return true
}

// Handles lists the exposed handles in no particular order.
func (n *Node) Handles() []string {
	m := *n.handlers.Load()
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// admit looks up handle for caller and reserves a concurrency slot. On
// success the caller must call e.release().
func (n *Node) admit(caller trust.PeerID, handle string) (*exposed, wire.Status) {
	e := (*n.handlers.Load())[handle]
	if e == nil {
		return nil, wire.StatusNoSuchHandle
	}
	if !e.allow.Allows(caller) {
		return nil, wire.StatusForbidden
	}
	if e.auth != nil && !e.auth(caller, handle) {
		return nil, wire.StatusForbidden
	}
	if v := e.inflight.Add(1); e.max > 0 && v > e.max {
		e.inflight.Add(-1)
		return nil, wire.StatusOverloaded
	}
	return e, wire.StatusOK
}

func (e *exposed) release() { e.inflight.Add(-1) }

// serve runs e's handler for req with panic recovery and e's timeout.
func (e *exposed) serve(ctx context.Context, req *Request) (body []byte, status wire.Status) {
	if e.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.timeout)
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			body, status = fmt.Append(nil, r), wire.StatusHandlerCrashed
		}
	}()
	res, err := e.h.Handle(ctx, req)
	if err == nil {
		return res, wire.StatusOK
	}
	st, msg := rpc.Outcome(ctx, err)
	ws, onWire := st.Wire()
	if !onWire {
		// The caller's own outcome of a call the handler made (not
		// connected, say): the handler failed.
		ws, msg = wire.StatusHandlerError, err.Error()
	}
	return []byte(msg), ws
}
