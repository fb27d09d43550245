package host

import (
	"errors"

	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/wire"
)

// Errors returned by Node methods; match them with errors.Is. The outcomes
// of a call are package rpc's sentinels, re-exported here: the same values
// a plugin matches, whatever was in between. A call that the remote side
// answered with a failure is a *RemoteError, which matches the sentinel
// for its status (context.DeadlineExceeded for a remote timeout).
var (
	// ErrClosed means the node has been closed. It is an "unavailable"
	// outcome: errors.Is(ErrClosed, ErrUnavailable) holds.
	ErrClosed = rpc.Errorf(rpc.StatusUnavailable, "node closed")
	// ErrNotConnected means there is no live connection to the peer.
	ErrNotConnected = rpc.ErrNotConnected
	// ErrConnLost means the connection dropped while the call was in flight;
	// the handler may or may not have run.
	ErrConnLost = rpc.ErrConnLost
	// ErrNotTrusted means the peer is not on this node's trust list.
	ErrNotTrusted = rpc.ErrNotTrusted
	// ErrNotTrustedByPeer means the peer refused us: we are not on its trust list.
	ErrNotTrustedByPeer = wire.ErrNotTrustedByPeer
	// ErrWrongPeer means the address answered with a different key than
	// the one dialled; nothing of ours was revealed to it.
	ErrWrongPeer = wire.ErrWrongPeer
	// ErrNoSuchHandle means the handle is not exposed.
	ErrNoSuchHandle = rpc.ErrNoSuchHandle
	// ErrForbidden means the handle is exposed, but not to the caller.
	ErrForbidden = rpc.ErrForbidden
	// ErrHandlerError means the handler returned an error; the *RemoteError
	// carries its message.
	ErrHandlerError = rpc.ErrHandlerError
	// ErrHandlerCrashed means the handler panicked or its plugin died.
	ErrHandlerCrashed = rpc.ErrHandlerCrashed
	// ErrUnavailable means the handler cannot serve now (plugin down or
	// failed, node shutting down).
	ErrUnavailable = rpc.ErrUnavailable
	// ErrOverloaded means too many calls were in flight for the handle or
	// from the caller.
	ErrOverloaded = rpc.ErrOverloaded
	// ErrTooLarge means the args or the result exceed the maximum message size.
	ErrTooLarge = rpc.ErrTooLarge
	// ErrBadHandle means a handle name is empty, too long or not UTF-8: a
	// "bad_request" outcome.
	ErrBadHandle = rpc.ErrBadRequest
	// ErrAlreadyConnected means Connect was asked for another address of
	// a peer that is connected; the working connection is kept.
	ErrAlreadyConnected = errors.New("host: peer already connected")
	// ErrBadAddr means an address is not host:port with a numeric port.
	ErrBadAddr = errors.New("host: bad address")
)

// RemoteError is a call that the remote node answered with a status other
// than ok: its Status, the remote side's Message (a handler's error
// message, or why it refused), and the Peer and Handle called. It matches
// the sentinel for its status with errors.Is.
type RemoteError = rpc.Error
