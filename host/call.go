package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// Call calls handle on peer with args and waits for the result. If ctx has
// no deadline, Config.CallTimeout applies. The deadline travels to the
// peer, and giving up (ctx done) cancels the handler's context there.
//
// Errors: ErrNotConnected at once if there is no live connection;
// ErrTooLarge if args do not fit in a message; a *RemoteError when the peer
// answered with a failure status (match it with errors.Is against
// ErrNoSuchHandle, ErrForbidden, ErrHandlerError, ...); an error matching
// ErrConnLost or ErrClosed if the connection or node went away; ctx's error.
// The caller owns args again once Call returns, and owns the result.
func (n *Node) Call(ctx context.Context, peer trust.PeerID, handle string, args []byte) ([]byte, error) {
	if err := n.checkRequest(handle, args); err != nil {
		return nil, err
	}
	var timeout time.Duration
	if _, ok := ctx.Deadline(); !ok {
		timeout = n.cfg.CallTimeout // enforced by a pooled timer, not a new context
	}
	var r callResult
	for {
		c := n.connFor(peer)
		if c == nil {
			return nil, n.notConnected(peer)
		}
		var err error
		r, err = c.call(ctx, handle, args, timeout)
		if errors.Is(err, errRetired) {
			continue // never sent: try the connection that replaced it
		}
		if err != nil {
			return nil, err
		}
		break
	}
	if r.status != wire.StatusOK {
		return nil, &RemoteError{Peer: peer, Handle: handle, Status: rpc.Status(r.status), Message: string(r.body)}
	}
	return r.body, nil
}

// Send delivers args to handle on peer without waiting for it to run: it
// returns once the message is queued for the network. Nothing reports the
// handler's outcome. It fails at once with ErrNotConnected if there is no
// live connection; it blocks only while the connection's write queue is
// full, until ctx is done.
func (n *Node) Send(ctx context.Context, peer trust.PeerID, handle string, args []byte) error {
	if err := n.checkRequest(handle, args); err != nil {
		return err
	}
	for {
		c := n.connFor(peer)
		if c == nil {
			return n.notConnected(peer)
		}
		if err := c.send(ctx, handle, args); !errors.Is(err, errRetired) {
			return err
		}
		// Never sent: try the connection that replaced it.
	}
}

func (n *Node) checkRequest(handle string, args []byte) error {
	if err := validHandle(handle); err != nil {
		return err
	}
	if size := wire.CallOverhead + len(handle) + len(args); size > n.cfg.MaxMessageSize {
		return fmt.Errorf("%w: %d bytes of args exceed the %d-byte message limit", ErrTooLarge, len(args), n.cfg.MaxMessageSize)
	}
	return nil
}

func (n *Node) notConnected(peer trust.PeerID) error {
	n.mu.RLock()
	closed := n.closed
	n.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return fmt.Errorf("%w: %s", ErrNotConnected, peer.Short())
}
