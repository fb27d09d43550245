// Package rpc defines PeerNet's request model, shared by everything between
// a caller and a handler: the node (package host), the plugin supervisor,
// and plugins (package pluginsdk). A Request is answered by a Handler; the
// outcome of a call is a Status, and every status other than ok is one
// sentinel error, matched with errors.Is on both sides of the plugin
// boundary and in embedded use.
//
// host and pluginsdk re-export these types under their own names (type
// aliases), so neither a plugin author nor an embedder needs to import rpc.
package rpc

import (
	"context"
	"strconv"
	"time"

	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// Kind says whether a request is a call, whose result goes back to the
// caller, or a send, whose result is discarded. The values are those of the
// plugin protocol.
type Kind uint8

const (
	// KindCall: the caller waits for the handler's result.
	KindCall Kind = iota + 1
	// KindSend: fire-and-forget; the handler's result is discarded.
	KindSend
)

// String returns "call", "send" or "Kind(N)".
func (k Kind) String() string {
	switch k {
	case KindCall:
		return "call"
	case KindSend:
		return "send"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Request is one inbound call or send as a handler sees it. The handler
// owns Args and may keep or modify it.
type Request struct {
	// Caller is the calling peer's PeerID, verified by the handshake; the
	// zero PeerID when the request did not come from a peer (a local test).
	Caller trust.PeerID
	// Handle is the name the request was made to.
	Handle string
	Kind   Kind
	Args   []byte
}

// Handler answers requests for a handle. Handle is called in its own
// goroutine for each request, concurrently with others. ctx carries the
// caller's deadline and is cancelled when the caller gives up, the
// connection drops or the server stops. The returned error's message
// reaches the caller once, as the text of its status: a handler's own
// error is "handler_error"; returning (or wrapping) one of this package's
// sentinels, or an *Error, gives the caller that status instead. A panic
// is recovered and answered "handler_crashed". The result belongs to the
// caller's side once Handle returns: the handler must not modify or reuse
// it afterwards (a large result is written to the network from where it
// lies, after Handle has returned).
type Handler interface {
	Handle(ctx context.Context, req *Request) ([]byte, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) ([]byte, error)

// Handle calls f(ctx, req).
func (f HandlerFunc) Handle(ctx context.Context, req *Request) ([]byte, error) { return f(ctx, req) }

// PeerInfo describes one trusted peer of a node.
type PeerInfo struct {
	ID        trust.PeerID
	Label     string
	AddedAt   time.Time
	Connected bool
	// Addr is the live connection's remote address, else the last known
	// address, or "".
	Addr string
	// Source says how the dial address was learned ("connect", "config",
	// "mdns", ...); empty if none.
	Source string

	// Suite and PeerMaxMessageSize describe the live connection, and are
	// zero without one (and in a plugin's Host.Peers): the cipher suite
	// its handshake settled on, and the largest message the peer accepts
	// on it (a call or send above it fails locally with too_large).
	Suite              wire.Suite
	PeerMaxMessageSize int
}
