package pluginsdk

import (
	"context"
	"errors"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/peernet/peernet/trust"
)

// Errors a Host callback returns. The node reports the outcome of a callback
// with these (and *HandlerError), so a plugin matches them with errors.Is
// whatever the transport in between. A deadline or cancellation of the
// callback's context is reported as context.DeadlineExceeded or
// context.Canceled.
var (
	// ErrUnavailable: the host serves no callbacks to this plugin, or the
	// connection to it is gone.
	ErrUnavailable = errors.New("pluginsdk: host unavailable")
	// ErrNotConnected: the peer is not connected.
	ErrNotConnected = errors.New("pluginsdk: peer not connected")
	// ErrNoSuchHandle: the peer does not expose the handle.
	ErrNoSuchHandle = errors.New("pluginsdk: no such handle")
	// ErrForbidden: the peer exposes the handle, but not to this node.
	ErrForbidden = errors.New("pluginsdk: forbidden")
	// ErrHandlerCrashed: the remote handler panicked.
	ErrHandlerCrashed = errors.New("pluginsdk: remote handler crashed")
	// ErrOverloaded: the peer or the host refused the call for lack of
	// capacity; retrying later may succeed.
	ErrOverloaded = errors.New("pluginsdk: overloaded")
	// ErrTooLarge: the arguments or the result exceed a maximum message size.
	ErrTooLarge = errors.New("pluginsdk: message too large")
	// ErrBadRequest: the host rejected the callback as malformed (for
	// example a zero PeerID).
	ErrBadRequest = errors.New("pluginsdk: bad request")
)

// HandlerError is the error a remote handler returned, as its message.
type HandlerError struct {
	Msg string
}

func (e *HandlerError) Error() string { return "pluginsdk: remote handler error: " + e.Msg }

// PeerID is a peer's address: its Ed25519 public key. See trust.PeerID.
type PeerID = trust.PeerID

// ParsePeerID parses the canonical text form of a PeerID ("pn1…").
func ParsePeerID(s string) (PeerID, error) { return trust.ParsePeerID(s) }

// Kind tells a call, whose result goes back to the caller, from a send,
// whose result is discarded.
type Kind uint8

const (
	// KindCall: the caller waits for the handler's result.
	KindCall Kind = iota + 1
	// KindSend: fire-and-forget; the handler's result is discarded.
	KindSend
)

func (k Kind) String() string {
	switch k {
	case KindCall:
		return "call"
	case KindSend:
		return "send"
	}
	return "unknown"
}

// Request is one call or send to a handle of the plugin. The handler owns
// Args and may keep or modify it.
type Request struct {
	// Caller is the verified PeerID of the calling peer; the zero PeerID when
	// the call did not come from a peer (e.g. a local test).
	Caller PeerID
	// Handle is the name the call was made to.
	Handle string
	Kind   Kind
	Args   []byte
}

// Handler serves a handle. Handle is called concurrently, once per call, in
// its own goroutine; ctx carries the caller's deadline and is cancelled when
// the caller gives up, the host drops the call or the plugin stops. The
// returned bytes belong to the SDK once returned. See the package
// documentation for how results, errors and panics reach the caller.
type Handler interface {
	Handle(ctx context.Context, req *Request) ([]byte, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) ([]byte, error)

// Handle calls f(ctx, req).
func (f HandlerFunc) Handle(ctx context.Context, req *Request) ([]byte, error) { return f(ctx, req) }

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

// PeerInfo describes one trusted peer of the node.
type PeerInfo struct {
	ID        PeerID
	Label     string
	Connected bool
	// Addr is the peer's last known network address, or "".
	Addr string
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
// result unless the node configures another.
const DefaultMaxMessageSize = 4 << 20

// MaxMessageSizeLimit is the largest maximum message size the protocol
// allows.
const MaxMessageSizeLimit = 64 << 20

// ProtocolVersion is the version of the PeerNet plugin protocol, negotiated
// through go-plugin's handshake and reported by Describe.
const ProtocolVersion = 1

// PluginName is the name PeerNet's plugin interface has in go-plugin's
// plugin set, on both sides.
const PluginName = "peernet"

// The go-plugin magic cookie. It only keeps a plugin binary from being run by
// hand, or by another program, by mistake; it is not a secret.
const (
	MagicCookieKey   = "PEERNET_PLUGIN"
	MagicCookieValue = "8f2c61d7a4b94e0b9c5e3a17d06fb2e4c1a98d35e7b04f6a"
)

// Handshake returns the go-plugin handshake both sides must agree on.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}

// LogLevelEnv is the environment variable through which the node tells a
// plugin the level its default logger should log at ("debug", "info", …).
const LogLevelEnv = "PEERNET_PLUGIN_LOG_LEVEL"
