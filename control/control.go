// Package control implements the control protocol between peernet-host's
// command-line client and a running node: small HTTP+JSON requests over a
// Unix socket in the node's data dir that only the node's user can open.
//
// The package holds both ends: the request and answer types, the socket's
// path (SocketPath), the Server a node runs (Listen) and the Client the
// command line uses (NewClient). The server reaches the node through
// Backend, the few things it needs, which the daemon provides.
package control

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// SocketName is the control socket's file name in the node's data dir.
const SocketName = "control.sock"

// SocketPath returns the path of the control socket of the node whose data
// dir is dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// API paths. Every request and response body is JSON.
const (
	PathStatus     = "/v1/status"     // GET: Status
	PathPeers      = "/v1/peers"      // GET: []Peer
	PathTrust      = "/v1/trust"      // GET: []Peer; POST TrustRequest; DELETE ?peer=
	PathConnect    = "/v1/connect"    // POST ConnectRequest
	PathDisconnect = "/v1/disconnect" // POST DisconnectRequest
	PathCall       = "/v1/call"       // POST CallRequest: CallResponse
	PathSend       = "/v1/send"       // POST CallRequest
	PathPlugins    = "/v1/plugins"    // GET: []PluginStatus
	PathReload     = "/v1/reload"     // POST: ReloadResponse
	PathRevoke     = "/v1/revoke"     // POST RevokeRequest
)

// maxBodySize bounds the body of a request or an answer that either end
// reads; a call's arguments and result ride in them.
const maxBodySize = 64 << 20

// Status describes the running node.
type Status struct {
	// Ready is false while the node is still launching the plugins of its
	// configuration: the control socket answers from the start, but
	// plugin handles are exposed only as their plugins come up.
	Ready     bool           `json:"ready"`
	Version   string         `json:"version"` // peernet-host's, as "peernet-host version" prints it
	Name      string         `json:"name"`
	ID        string         `json:"id"`
	Listen    string         `json:"listen"`
	Uptime    Duration       `json:"uptime"`
	Peers     int            `json:"peers"`     // trusted
	Connected int            `json:"connected"` // of those, connected
	Inflight  int            `json:"inflight"`  // inbound calls running
	Plugins   []PluginStatus `json:"plugins"`
}

// PluginStatus is one plugin as the node's supervisor reports it.
type PluginStatus struct {
	Name    string `json:"name"`
	Version string `json:"version"` // as the plugin described itself
	// State is the supervisor's name for the plugin's state: starting,
	// running, restarting, failed, revoked or stopped.
	State      string   `json:"state"`
	Generation int      `json:"generation"` // 1 for the first process, +1 per restart or swap
	Pid        int      `json:"pid"`        // 0 when no process runs
	Restarts   int      `json:"restarts"`   // restarts after crashes
	Handles    []string `json:"handles"`    // exposed handles
	InFlight   int      `json:"in_flight"`  // calls awaiting replies from the serving generation
	LastError  string   `json:"last_error,omitempty"`
	Path       string   `json:"path"`   // the binary, as configured
	SHA256     string   `json:"sha256"` // its configured digest
}

// Peer is one trusted peer.
type Peer struct {
	ID        string    `json:"id"`
	Label     string    `json:"label"`
	AddedAt   time.Time `json:"added_at"`
	Connected bool      `json:"connected"`
	Addr      string    `json:"addr,omitempty"`
	Source    string    `json:"source,omitempty"`
	// Suite and PeerMaxMessageSize describe the live connection (empty
	// and 0 without one): its cipher suite ("ChaChaPoly", "AESGCM") and
	// the largest message the peer accepts on it.
	Suite              string `json:"suite,omitempty"`
	PeerMaxMessageSize int    `json:"peer_max_message_size,omitempty"`
}

// TrustRequest adds a peer to the trust list, or relabels one.
//
// Without Relabel, ID must be a PeerID, and a peer that is already trusted
// under another label, or a label that already names another peer, is
// refused with CodeConflict: a silent relabel would break every command
// and allow list that uses the old label. With Relabel, ID names a trusted
// peer by label or PeerID and Label replaces its label.
type TrustRequest struct {
	ID      string `json:"id"`
	Label   string `json:"label"`
	Relabel bool   `json:"relabel,omitempty"`
}

// ConnectRequest dials a peer, named by label or PeerID.
type ConnectRequest struct {
	Peer string `json:"peer"`
	Addr string `json:"addr"`
}

// DisconnectRequest drops the connection to a peer (label or PeerID)
// without untrusting it; it is not redialled until the next connect,
// discovery hint or restart.
type DisconnectRequest struct {
	Peer string `json:"peer"`
}

// CallRequest calls or sends to a handle on a peer (label or PeerID).
type CallRequest struct {
	Peer    string   `json:"peer"`
	Handle  string   `json:"handle"`
	Args    []byte   `json:"args"`
	Timeout Duration `json:"timeout,omitempty"` // 0: the node's default
}

// CallResponse is a call's result.
type CallResponse struct {
	Result []byte `json:"result"`
}

// RevokeRequest revokes a plugin's handle, or the whole plugin when Handle
// is empty.
type RevokeRequest struct {
	Plugin string `json:"plugin"`
	Handle string `json:"handle,omitempty"`
}

// ReloadResponse says what a reload changed.
type ReloadResponse struct {
	Peers         []string `json:"peers"`
	Plugins       []string `json:"plugins"`
	RestartNeeded []string `json:"restart_needed"`
	// Warning reports plugins that did not come up; the rest applied.
	Warning string `json:"warning,omitempty"`
}

// Error is a failed request as the node reports it. Code says what kind of
// failure it is, for scripts and exit codes. A Backend method may return
// one to pick the code itself; the Server gives any other error the code
// that fits it.
type Error struct {
	Code string `json:"code"`
	// Status is the outcome of a call or send that failed, as rpc.Status
	// names it ("deadline_exceeded", "no_such_handle", ...); empty for
	// other failures, and for a call refused before it was made (an
	// unknown peer, a malformed request).
	Status  string `json:"status,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Error codes.
const (
	CodeBadRequest       = "bad_request"       // malformed request or argument
	CodeUnknownPeer      = "unknown_peer"      // no trusted peer by that label or ID
	CodeNotConnected     = "not_connected"     // no live connection to the peer
	CodeAlreadyConnected = "already_connected" // connect: connected at another address; nothing changed
	CodeConflict         = "conflict"          // trust: the peer or the label is already taken; nothing changed
	CodeInvalidConfig    = "invalid_config"    // reload: the file has errors; nothing changed
	CodeRemote           = "remote"            // the peer answered with a failure status
	CodeTimeout          = "timeout"           // the deadline passed
	CodeTooLarge         = "too_large"         // the request body is over its limit (HTTP 413)
	CodeRequestTimeout   = "request_timeout"   // the request body came too slowly (HTTP 408)
	CodeBusy             = "busy"              // too many control requests at once; retry (HTTP 503)
	CodeFailed           = "failed"            // anything else
	// CodeNotRunning is the client's own: no node answers on the control
	// socket (ErrNotRunning). No node sends it.
	CodeNotRunning = "not_running"
)

// Duration is a time.Duration that reads and writes as text ("1.5s").
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("control: bad duration %q", b)
	}
	*d = Duration(v)
	return nil
}

// Errors of the Client.
var (
	// ErrNotRunning means no node answers on the control socket.
	ErrNotRunning = errors.New("control: node is not running")
	// ErrSocketPermissions means the control socket is open to other users,
	// so the client refuses to talk through it.
	ErrSocketPermissions = errors.New("control: control socket has unsafe permissions")
)
