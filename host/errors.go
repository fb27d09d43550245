package host

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// Errors returned by Node methods; match them with errors.Is. A failed call
// that the remote side answered is a *RemoteError, which also matches the
// sentinel for its status.
var (
	// ErrClosed means the node has been closed.
	ErrClosed = errors.New("host: node closed")
	// ErrNotConnected means there is no live connection to the peer.
	ErrNotConnected = errors.New("host: peer not connected")
	// ErrConnLost means the connection dropped while the call was in flight;
	// the handler may or may not have run.
	ErrConnLost = errors.New("host: connection lost")
	// ErrNotTrusted means the peer is not on this node's trust list.
	ErrNotTrusted = errors.New("host: peer not trusted by this node")
	// ErrNotTrustedByPeer means the peer refused us: we are not on its trust list.
	ErrNotTrustedByPeer = wire.ErrNotTrustedByPeer
	// ErrWrongPeer means the address answered with a different key than
	// the one dialled; nothing of ours was revealed to it.
	ErrWrongPeer = wire.ErrWrongPeer
	// ErrNoSuchHandle means the handle is not exposed.
	ErrNoSuchHandle = errors.New("host: no such handle")
	// ErrForbidden means the handle is exposed, but not to the caller.
	ErrForbidden = errors.New("host: forbidden")
	// ErrHandlerError means the handler returned an error; the *RemoteError
	// carries its message.
	ErrHandlerError = errors.New("host: handler error")
	// ErrHandlerCrashed means the handler panicked or its plugin died.
	ErrHandlerCrashed = errors.New("host: handler crashed")
	// ErrUnavailable means the handler cannot serve now (plugin down or
	// failed, node shutting down).
	ErrUnavailable = errors.New("host: handler unavailable")
	// ErrOverloaded means too many calls were in flight for the handle or
	// from the caller.
	ErrOverloaded = errors.New("host: overloaded")
	// ErrTooLarge means the args or the result exceed the maximum message size.
	ErrTooLarge = errors.New("host: message too large")
	// ErrBadHandle means a handle name is empty, too long or not UTF-8.
	ErrBadHandle = errors.New("host: bad handle name")
	// ErrAlreadyConnected means Connect was asked for another address of
	// a peer that is connected; the working connection is kept.
	ErrAlreadyConnected = errors.New("host: peer already connected")
	// ErrBadAddr means an address is not host:port with a numeric port.
	ErrBadAddr = errors.New("host: bad address")
)

// RemoteError is a call that the remote node answered with a status other
// than ok. It matches the sentinel for its status with errors.Is
// (ErrHandlerError for a handler's own error, context.DeadlineExceeded for a
// remote timeout).
type RemoteError struct {
	Peer    trust.PeerID
	Handle  string
	Status  wire.Status
	Message string // the remote side's text: a handler's error message, or why it refused
}

func (e *RemoteError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("host: call %s on %s: %s", e.Handle, e.Peer.Short(), e.Status)
	}
	return fmt.Sprintf("host: call %s on %s: %s: %s", e.Handle, e.Peer.Short(), e.Status, e.Message)
}

// Unwrap returns the sentinel for e.Status.
func (e *RemoteError) Unwrap() error { return statusErr(e.Status) }

func statusErr(s wire.Status) error {
	switch s {
	case wire.StatusNoSuchHandle:
		return ErrNoSuchHandle
	case wire.StatusForbidden:
		return ErrForbidden
	case wire.StatusHandlerError:
		return ErrHandlerError
	case wire.StatusHandlerCrashed:
		return ErrHandlerCrashed
	case wire.StatusUnavailable:
		return ErrUnavailable
	case wire.StatusOverloaded:
		return ErrOverloaded
	case wire.StatusDeadlineExceeded:
		return context.DeadlineExceeded
	case wire.StatusTooLarge:
		return ErrTooLarge
	}
	return nil
}

// errStatus maps a handler's error to the status its caller sees, so that a
// handler (a plugin adapter, say) can answer "unavailable" or "overloaded"
// by returning the matching sentinel.
func errStatus(err error) wire.Status {
	for _, m := range []struct {
		err    error
		status wire.Status
	}{
		{ErrNoSuchHandle, wire.StatusNoSuchHandle},
		{ErrForbidden, wire.StatusForbidden},
		{ErrHandlerCrashed, wire.StatusHandlerCrashed},
		{ErrUnavailable, wire.StatusUnavailable},
		{ErrOverloaded, wire.StatusOverloaded},
		{ErrTooLarge, wire.StatusTooLarge},
		{context.DeadlineExceeded, wire.StatusDeadlineExceeded},
	} {
		if errors.Is(err, m.err) {
			return m.status
		}
	}
	return wire.StatusHandlerError
}

// remoteText is the message a caller gets with status st for a handler's
// err: without the text of st's own sentinel, which the status already
// says.
func remoteText(err error, st wire.Status) string {
	msg := err.Error()
	if s := statusErr(st); s != nil && st != wire.StatusHandlerError {
		if msg == s.Error() {
			return ""
		}
		msg = strings.TrimPrefix(msg, s.Error()+": ")
	}
	return msg
}
