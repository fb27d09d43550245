package rpc

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// Status is the outcome of a call. Statuses below 64 are the network's
// (wire.Status, docs/protocol.md §5.2) and keep their values; statuses from
// 64 on are outcomes that only the calling side can observe (no peer ever
// sends them) and that cross the plugin boundary, where a plugin's
// callback reports them.
type Status uint8

// The network's statuses.
const (
	StatusOK               = Status(wire.StatusOK)
	StatusNoSuchHandle     = Status(wire.StatusNoSuchHandle)
	StatusForbidden        = Status(wire.StatusForbidden)
	StatusHandlerError     = Status(wire.StatusHandlerError)
	StatusHandlerCrashed   = Status(wire.StatusHandlerCrashed)
	StatusUnavailable      = Status(wire.StatusUnavailable)
	StatusOverloaded       = Status(wire.StatusOverloaded)
	StatusDeadlineExceeded = Status(wire.StatusDeadlineExceeded)
	StatusTooLarge         = Status(wire.StatusTooLarge)
)

// The caller's own statuses.
const (
	// StatusNotConnected: there is no live connection to the peer.
	StatusNotConnected Status = 64 + iota
	// StatusConnLost: the connection dropped while the call was in flight;
	// the handler may or may not have run.
	StatusConnLost
	// StatusCanceled: the caller gave up.
	StatusCanceled
	// StatusBadRequest: the request was malformed (a handle name that is
	// not 1-255 bytes of UTF-8, a zero PeerID); it was never sent.
	StatusBadRequest
	// StatusNotTrusted: the peer is not on the node's trust list.
	StatusNotTrusted
)

// Sentinels, one per status other than ok; match them with errors.Is. Their
// text is the status's name, the one docs, logs, metrics and the CLI use,
// so that an error reads "call kv.get on pn1…: forbidden". A deadline and a
// cancellation are the context package's own errors.
var (
	ErrNoSuchHandle   error = &sentinel{StatusNoSuchHandle}   // the handle is not exposed
	ErrForbidden      error = &sentinel{StatusForbidden}      // the handle is exposed, but not to the caller
	ErrHandlerError   error = &sentinel{StatusHandlerError}   // the handler returned an error; *Error carries its message
	ErrHandlerCrashed error = &sentinel{StatusHandlerCrashed} // the handler panicked or its plugin process died
	ErrUnavailable    error = &sentinel{StatusUnavailable}    // the handler cannot serve now (plugin down, node stopping)
	ErrOverloaded     error = &sentinel{StatusOverloaded}     // too many calls in flight for the handle or from the caller
	ErrTooLarge       error = &sentinel{StatusTooLarge}       // the args or the result exceed the maximum message size
	ErrNotConnected   error = &sentinel{StatusNotConnected}   // no live connection to the peer
	ErrConnLost       error = &sentinel{StatusConnLost}       // the connection dropped during the call
	ErrBadRequest     error = &sentinel{StatusBadRequest}     // a malformed request, never sent
	ErrNotTrusted     error = &sentinel{StatusNotTrusted}     // the peer is not on the trust list
)

// statuses is the vocabulary: each status's name and its error. It is the
// only table that relates the two.
var statuses = map[Status]struct {
	name string
	err  error
}{
	StatusOK:               {"ok", nil},
	StatusNoSuchHandle:     {"no_such_handle", ErrNoSuchHandle},
	StatusForbidden:        {"forbidden", ErrForbidden},
	StatusHandlerError:     {"handler_error", ErrHandlerError},
	StatusHandlerCrashed:   {"handler_crashed", ErrHandlerCrashed},
	StatusUnavailable:      {"unavailable", ErrUnavailable},
	StatusOverloaded:       {"overloaded", ErrOverloaded},
	StatusDeadlineExceeded: {"deadline_exceeded", context.DeadlineExceeded},
	StatusTooLarge:         {"too_large", ErrTooLarge},
	StatusNotConnected:     {"not_connected", ErrNotConnected},
	StatusConnLost:         {"connection_lost", ErrConnLost},
	StatusCanceled:         {"canceled", context.Canceled},
	StatusBadRequest:       {"bad_request", ErrBadRequest},
	StatusNotTrusted:       {"not_trusted", ErrNotTrusted},
}

// byValue lists the known statuses in order, for StatusOf.
var byValue = func() []Status {
	var out []Status
	for s := range 256 {
		if _, ok := statuses[Status(s)]; ok {
			out = append(out, Status(s))
		}
	}
	return out
}()

// String returns the status's name ("no_such_handle"), or "Status(N)" for
// an unknown one.
func (s Status) String() string {
	if v, ok := statuses[s]; ok {
		return v.name
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Known reports whether s is a status of this vocabulary.
func (s Status) Known() bool { _, ok := statuses[s]; return ok }

// Err returns the sentinel for s: nil for StatusOK, context.DeadlineExceeded
// and context.Canceled for those statuses, and for an unknown status an
// error that says so.
func (s Status) Err() error {
	if v, ok := statuses[s]; ok {
		return v.err
	}
	return &sentinel{s}
}

// Wire returns s as the network's status and true, or false when s is one
// of the caller's own statuses, which no reply carries.
func (s Status) Wire() (wire.Status, bool) {
	return wire.Status(s), s < StatusNotConnected && s.Known()
}

// sentinel is the error of one status.
type sentinel struct{ s Status }

func (e *sentinel) Error() string { return e.s.String() }

// Error is a call's outcome other than ok, with the text that came with
// it: a handler's own message, or why the call was refused. It matches the
// sentinel of its status with errors.Is, and is matched by errors.As
// wherever the call was made: in a node, in the plugin supervisor, or in a
// plugin's callback.
type Error struct {
	Status Status
	// Message is the other side's text, "" when the status says it all.
	Message string
	// Peer and Handle name the call, when known; Peer is zero for a call
	// that did not go to a peer (a node calling its own plugin).
	Peer   trust.PeerID
	Handle string
}

// Error reads "call HANDLE on PEER: STATUS: MESSAGE", leaving out what is
// not known.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Handle != "" {
		b.WriteString("call ")
		b.WriteString(e.Handle)
		if !e.Peer.IsZero() {
			b.WriteString(" on ")
			b.WriteString(e.Peer.Short())
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Status.String())
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Unwrap returns the sentinel of e.Status.
func (e *Error) Unwrap() error { return e.Status.Err() }

// Errorf returns an error of status s whose message is msg, for a handler
// or a transport that refuses a call with a reason: errors.Is(err,
// s.Err()) holds and the caller receives msg once, without the status's
// name repeated in front of it.
func Errorf(s Status, msg string) error { return &Error{Status: s, Message: msg} }

// StatusOf returns the status that err stands for: StatusOK for nil, the
// status of the first *Error in err's chain, else of the first status
// (in order of value) whose error err matches with errors.Is (its
// sentinel, or context.DeadlineExceeded or context.Canceled), and
// StatusHandlerError for any other error (a handler's own).
func StatusOf(err error) Status {
	if err == nil {
		return StatusOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	for _, s := range byValue {
		if target := statuses[s].err; target != nil && errors.Is(err, target) {
			return s
		}
	}
	return StatusHandlerError
}

// Split returns the status err stands for (see StatusOf) and the message
// that goes with it: the Message of err when it is an *Error, else err's
// text without the status's own name in front, so that whoever receives
// both never reads the status twice.
func Split(err error) (Status, string) {
	st := StatusOf(err)
	if st == StatusOK {
		return st, ""
	}
	if e, ok := err.(*Error); ok && e.Status == st {
		return st, e.Message
	}
	msg, name := err.Error(), st.Err().Error()
	if msg == name {
		return st, ""
	}
	return st, strings.TrimPrefix(msg, name+": ")
}

// Outcome returns the status and message a caller receives for the err a
// handler returned when run with ctx, as Split does, with two exceptions.
// An *Error that names a call (its Handle is set) is the outcome of a call
// the handler itself made, not a status the handler chose: it is answered
// "handler_error" with its whole text, so that a handler passing on, say,
// a "forbidden" from another peer does not answer "forbidden" for its own
// handle. And a handler's own error after ctx's deadline passed is
// "deadline_exceeded": the deadline is why it failed.
func Outcome(ctx context.Context, err error) (Status, string) {
	var e *Error
	st, msg := StatusHandlerError, err.Error()
	if !errors.As(err, &e) || e.Handle == "" {
		st, msg = Split(err)
	}
	if st == StatusHandlerError && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		st = StatusDeadlineExceeded
	}
	return st, msg
}
