package pluginsdk

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// Outcomes of a call, the same values the node uses (package rpc): a
// Host callback fails with them, and a handler may return them. Match them
// with errors.Is; an outcome that came with a message is an *Error, which
// matches its status's sentinel too. A deadline or cancellation is
// context.DeadlineExceeded or context.Canceled.
var (
	// ErrUnavailable: the host serves no callbacks to this plugin, the
	// connection to it is gone, or the handler cannot serve now.
	ErrUnavailable = rpc.ErrUnavailable
	// ErrNotConnected: the peer is not connected.
	ErrNotConnected = rpc.ErrNotConnected
	// ErrConnLost: the connection to the peer dropped during the call; the
	// remote handler may or may not have run.
	ErrConnLost = rpc.ErrConnLost
	// ErrNotTrusted: the peer is not on the node's trust list.
	ErrNotTrusted = rpc.ErrNotTrusted
	// ErrNoSuchHandle: the peer does not expose the handle.
	ErrNoSuchHandle = rpc.ErrNoSuchHandle
	// ErrForbidden: the peer exposes the handle, but not to this node.
	ErrForbidden = rpc.ErrForbidden
	// ErrHandlerError: the remote handler returned an error; the *Error
	// carries its message.
	ErrHandlerError = rpc.ErrHandlerError
	// ErrHandlerCrashed: the remote handler panicked or its plugin died.
	ErrHandlerCrashed = rpc.ErrHandlerCrashed
	// ErrOverloaded: the peer or the host refused the call for lack of
	// capacity; retrying later may succeed.
	ErrOverloaded = rpc.ErrOverloaded
	// ErrTooLarge: the arguments or the result exceed a maximum message size.
	ErrTooLarge = rpc.ErrTooLarge
	// ErrBadRequest: the host rejected the callback as malformed (for
	// example a zero PeerID or a bad handle name).
	ErrBadRequest = rpc.ErrBadRequest
)

// Error is an outcome other than ok with the text that came with it (a
// remote handler's message, say); see rpc.Error.
type Error = rpc.Error

// Status is the outcome of a call; see rpc.Status.
type Status = rpc.Status

// PeerID is a peer's address: its Ed25519 public key. See trust.PeerID.
type PeerID = trust.PeerID

// ParsePeerID parses the canonical text form of a PeerID ("pn1…").
func ParsePeerID(s string) (PeerID, error) { return trust.ParsePeerID(s) }

// The request model is the node's own (package rpc).
type (
	// Kind tells a call, whose result goes back to the caller, from a
	// send, whose result is discarded.
	Kind = rpc.Kind
	// Request is one call or send to a handle of the plugin. The handler
	// owns Args and may keep or modify it.
	Request = rpc.Request
	// Handler serves a handle. Handle is called concurrently, once per
	// call, in its own goroutine; ctx carries the caller's deadline and is
	// cancelled when the caller gives up, the host drops the call or the
	// plugin stops. The returned bytes belong to the SDK once returned.
	// See the package documentation for how results, errors and panics
	// reach the caller.
	Handler = rpc.Handler
	// HandlerFunc adapts a function to Handler.
	HandlerFunc = rpc.HandlerFunc
	// PeerInfo describes one trusted peer of the node.
	PeerInfo = rpc.PeerInfo
)

// The kinds of request.
const (
	KindCall = rpc.KindCall
	KindSend = rpc.KindSend
)

// Host is the node seen from a plugin: callbacks that call or send to peers
// on the plugin's behalf. The plugin receives it in Config.Configure; its
// methods are safe for concurrent use and block until the node answers or
// ctx ends. The node decides which of these a plugin may do; a refusal
// comes back as ErrForbidden.
//
// The node implements Host too (it is what the host-side driver serves to the
// plugin); an implementation reports failures with the errors of this
// package.
type Host interface {
	// Call calls handle on peer and returns its result. The caller owns the
	// result.
	Call(ctx context.Context, peer PeerID, handle string, args []byte) ([]byte, error)
	// Send sends to handle on peer without waiting for a result; it returns
	// once the node has accepted the message for delivery.
	Send(ctx context.Context, peer PeerID, handle string, args []byte) error
	// Peers lists the node's trusted peers. The caller owns the slice.
	Peers(ctx context.Context) ([]PeerInfo, error)
}

// Config describes a plugin to Serve. Serve does not modify it.
type Config struct {
	// Name identifies the plugin in the node's logs and configuration.
	// Required.
	Name string
	// Version is free-form, reported to the node (e.g. "1.2.0").
	Version string
	// Handlers maps each handle the plugin serves to its handler. At least
	// one is required. The node decides which of them are exposed to whom.
	Handlers map[string]Handler
	// Configure, if set, is called once, before any call, with the
	// plugin-specific configuration from the node's configuration file (JSON
	// by convention; nil when there is none) and the Host callbacks (never
	// nil; without a host to serve them its methods fail with
	// ErrUnavailable). An error aborts the plugin's start, and the node logs
	// it.
	Configure func(ctx context.Context, host Host, config []byte) error
	// Logger, if set, replaces Serve's default logger (JSON to stderr, at the
	// level the node asks for).
	Logger hclog.Logger
}

// DefaultMaxMessageSize is the maximum size of a call's arguments and of a
// result unless the node configures another: the network's default.
const DefaultMaxMessageSize = wire.DefaultMaxMessageSize

// MaxMessageSizeLimit is the largest maximum message size the protocol
// allows.
const MaxMessageSizeLimit = 64 << 20

// ProtocolVersion is the version of the PeerNet plugin protocol, negotiated
// through go-plugin's handshake and reported by describe.
const ProtocolVersion = 2

// The go-plugin magic cookie. It only keeps a plugin binary from being run by
// hand, or by another program, by mistake; it is not a secret.
const (
	MagicCookieKey   = "PEERNET_PLUGIN"
	MagicCookieValue = "8f2c61d7a4b94e0b9c5e3a17d06fb2e4c1a98d35e7b04f6a"
)

// LogLevelEnv is the environment variable through which the node tells a
// plugin the level its default logger should log at ("debug", "info", …).
const LogLevelEnv = "PEERNET_PLUGIN_LOG_LEVEL"
