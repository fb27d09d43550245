package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
)

// Client talks to a running node through its control socket. Its methods
// are safe for concurrent use and block until the node answers or ctx ends.
type Client struct {
	path string
	http *http.Client
}

// NewClient returns a client of the control socket at path. It checks that
// the socket exists and is not open to other users: a missing socket is
// ErrNotRunning, an unsafe one ErrSocketPermissions.
func NewClient(path string) (*Client, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (no control socket at %s)", ErrNotRunning, path)
	}
	if err != nil {
		return nil, fmt.Errorf("control: checking control socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return nil, fmt.Errorf("control: %s is not a socket", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; it must be 0600", ErrSocketPermissions, path, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return nil, fmt.Errorf("%w: %s belongs to uid %d, not to us", ErrSocketPermissions, path, st.Uid)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", path)
			if err != nil {
				return nil, fmt.Errorf("%w (%v)", ErrNotRunning, err)
			}
			return c, nil
		},
		DisableKeepAlives: true,
	}
	return &Client{path: path, http: &http.Client{Transport: tr}}, nil
}

// do sends a request with body in (nil for none) and decodes the answer
// into out (nil to ignore it).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := "http://node" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			// Not net/http's "Post URL: ..." form: the request is an
			// implementation detail, the deadline is the event. (A dial
			// cut short by it is not a node that is not running.)
			return fmt.Errorf("control: no answer from the node: %w", cerr)
		}
		if errors.Is(err, ErrNotRunning) {
			return fmt.Errorf("%w (control socket %s does not answer)", ErrNotRunning, c.path)
		}
		if req.ContentLength > maxSmallBody {
			// The node closes the connection on a body over its limit,
			// and that can beat its 413 answer to the client.
			return fmt.Errorf("control: sending a %d-byte request: %w (a body over the node's limit, which follows its max_message_size, is refused)", req.ContentLength, err)
		}
		return fmt.Errorf("control: %w", err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxBodySize))
	if resp.StatusCode != http.StatusOK {
		var e Error
		if err := dec.Decode(&e); err != nil || e.Code == "" {
			return statusError(resp)
		}
		return &e
	}
	if out == nil {
		return nil
	}
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("control: decoding answer: %w", err)
	}
	return nil
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	return &s, c.do(ctx, http.MethodGet, PathStatus, nil, nil, &s)
}

// Peers lists the trusted peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var p []Peer
	return p, c.do(ctx, http.MethodGet, PathPeers, nil, nil, &p)
}

// Trust adds id with label to the trust list. A peer already trusted
// under another label is refused (an *Error with CodeConflict); Relabel
// changes a label.
func (c *Client) Trust(ctx context.Context, id, label string) error {
	return c.do(ctx, http.MethodPost, PathTrust, nil, TrustRequest{ID: id, Label: label}, nil)
}

// Relabel gives a trusted peer (label or ID) a new label.
func (c *Client) Relabel(ctx context.Context, peer, label string) error {
	return c.do(ctx, http.MethodPost, PathTrust, nil, TrustRequest{ID: peer, Label: label, Relabel: true}, nil)
}

// Untrust removes a peer (label or ID) from the trust list.
func (c *Client) Untrust(ctx context.Context, peer string) error {
	return c.do(ctx, http.MethodDelete, PathTrust, url.Values{"peer": {peer}}, nil, nil)
}

// Connect dials a peer (label or ID) at addr and waits for the handshake.
func (c *Client) Connect(ctx context.Context, peer, addr string) error {
	return c.do(ctx, http.MethodPost, PathConnect, nil, ConnectRequest{Peer: peer, Addr: addr}, nil)
}

// Disconnect drops the connection to a peer (label or ID) without
// untrusting it. A peer that was not connected is an *Error with
// CodeNotConnected.
func (c *Client) Disconnect(ctx context.Context, peer string) error {
	return c.do(ctx, http.MethodPost, PathDisconnect, nil, DisconnectRequest{Peer: peer}, nil)
}

// Call calls a handle on a peer and returns the result. A call that fails
// is an *Error whose Status names the outcome (see CallError), including
// when ctx ends before the node answers.
func (c *Client) Call(ctx context.Context, req CallRequest) ([]byte, error) {
	var r CallResponse
	err := c.do(ctx, http.MethodPost, PathCall, nil, req, &r)
	return r.Result, callOutcome(ctx, "call", req, err)
}

// Send sends to a handle on a peer. Errors are as for Call.
func (c *Client) Send(ctx context.Context, req CallRequest) error {
	return callOutcome(ctx, "send", req, c.do(ctx, http.MethodPost, PathSend, nil, req, nil))
}

// callOutcome turns the end of ctx before the node answered into the
// Error the node gives for the same event.
func callOutcome(ctx context.Context, verb string, req CallRequest, err error) error {
	var e *Error
	if err != nil && ctx.Err() != nil && !errors.As(err, &e) {
		return CallError(verb, req, ctx.Err())
	}
	return err
}

// Plugins returns the plugins' status.
func (c *Client) Plugins(ctx context.Context) ([]PluginStatus, error) {
	var p []PluginStatus
	return p, c.do(ctx, http.MethodGet, PathPlugins, nil, nil, &p)
}

// Reload makes the node re-read its configuration file.
func (c *Client) Reload(ctx context.Context) (*ReloadResponse, error) {
	var r ReloadResponse
	return &r, c.do(ctx, http.MethodPost, PathReload, nil, nil, &r)
}

// Revoke revokes a plugin's handle, or the whole plugin if handle is "".
func (c *Client) Revoke(ctx context.Context, plugin, handle string) error {
	return c.do(ctx, http.MethodPost, PathRevoke, nil, RevokeRequest{Plugin: plugin, Handle: handle}, nil)
}

// statusError describes an answer without the protocol's Error: one that
// net/http gives before the node sees the request, such as 431 for headers
// over the limit.
func statusError(resp *http.Response) *Error {
	e := &Error{Code: CodeFailed, Message: "control: node answered " + resp.Status}
	switch resp.StatusCode {
	case http.StatusRequestEntityTooLarge:
		e.Code, e.Message = CodeTooLarge, "control: the node refused the request as too large (413)"
	case http.StatusRequestHeaderFieldsTooLarge:
		e.Code, e.Message = CodeBadRequest, "control: the node refused the request's headers as too large (431)"
	case http.StatusRequestTimeout:
		e.Code, e.Message = CodeRequestTimeout, "control: the node timed out reading the request (408)"
	case http.StatusServiceUnavailable:
		e.Code, e.Message = CodeBusy, "control: the node is busy or stopping (503); retry"
	case http.StatusBadRequest:
		e.Code, e.Message = CodeBadRequest, "control: the node could not parse the request (400)"
	}
	return e
}
