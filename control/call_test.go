package control_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/peernet/peernet/control"
	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/trust"
)

// TestCallDeadline checks that a call whose deadline passes reaches the
// client as one Error, whichever side noticed: the node before sending,
// the peer (whose text is dropped), or the client, whose own deadline
// passed before the node answered.
func TestCallDeadline(t *testing.T) {
	beta := newID(t)
	peers := []host.PeerInfo{{ID: beta, Label: "beta"}}
	req := control.CallRequest{Peer: "beta", Handle: "sleep", Args: []byte("1h")}
	want := control.Error{Code: control.CodeTimeout, Status: "deadline_exceeded", Message: "call sleep on beta: deadline_exceeded"}
	for _, tt := range []struct {
		name string
		call func(ctx context.Context, id trust.PeerID, handle string, args []byte) ([]byte, error)
		// client is the client's own deadline; 0 for none.
		client time.Duration
	}{
		{"node", func(ctx context.Context, _ trust.PeerID, _ string, _ []byte) ([]byte, error) {
			return nil, context.DeadlineExceeded
		}, 0},
		{"peer", func(ctx context.Context, id trust.PeerID, handle string, _ []byte) ([]byte, error) {
			return nil, &host.RemoteError{Peer: id, Handle: handle, Status: rpc.StatusDeadlineExceeded, Message: "handler gave up"}
		}, 0},
		{"client", func(ctx context.Context, _ trust.PeerID, _ string, _ []byte) ([]byte, error) {
			<-ctx.Done() // the client hangs up when its deadline passes
			return nil, ctx.Err()
		}, 50 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, c := serve(t, &fake{peers: peers, call: tt.call})
			ctx, cancel := context.WithCancel(context.Background())
			if tt.client > 0 {
				ctx, cancel = context.WithTimeout(context.Background(), tt.client)
			}
			defer cancel()
			_, err := c.Call(ctx, req)
			var ce *control.Error
			if !errors.As(err, &ce) || *ce != want {
				t.Errorf("error %v (%T), want %+v", err, err, want)
			}
		})
	}
}

// TestTrustConflict checks that trusting a trusted peer under another
// label, or a label that names another peer, is refused without reaching
// the node, and that Relabel changes a label.
func TestTrustConflict(t *testing.T) {
	beta, gamma := newID(t), newID(t)
	f := &fake{peers: []host.PeerInfo{{ID: beta, Label: "beta"}}}
	_, c := serve(t, f)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		do   func() error
		msg  []string
	}{
		{"trusted under another label", func() error { return c.Trust(ctx, beta.String(), "b") },
			[]string{`already trusted as "beta"`, "trust relabel " + beta.String() + " b"}},
		{"label of another peer", func() error { return c.Trust(ctx, gamma.String(), "beta") },
			[]string{`the label "beta" already names ` + beta.String()}},
		{"relabel of an untrusted peer", func() error { return c.Relabel(ctx, gamma.String(), "g") },
			[]string{gamma.String() + " is not trusted"}},
	} {
		err := tt.do()
		var ce *control.Error
		if !errors.As(err, &ce) || (ce.Code != control.CodeConflict && ce.Code != control.CodeUnknownPeer) {
			t.Errorf("%s: error %v, want a conflict or an unknown peer", tt.name, err)
			continue
		}
		for _, m := range tt.msg {
			if !strings.Contains(ce.Message, m) {
				t.Errorf("%s: message %q lacks %q", tt.name, ce.Message, m)
			}
		}
	}
	if got := f.calls(); len(got) != 0 {
		t.Errorf("refused requests reached the node: %q", got)
	}
	for _, tt := range []struct {
		name string
		do   func() error
		want string
	}{
		{"same label again", func() error { return c.Trust(ctx, beta.String(), "beta") }, "Trust " + beta.String() + " beta"},
		{"relabel by label", func() error { return c.Relabel(ctx, "beta", "b") }, "Trust " + beta.String() + " b"},
		{"relabel by PeerID", func() error { return c.Relabel(ctx, beta.String(), "b2") }, "Trust " + beta.String() + " b2"},
	} {
		before := len(f.calls())
		if err := tt.do(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got := f.calls()[before:]; len(got) != 1 || got[0] != tt.want {
			t.Errorf("%s: node got %q, want %q", tt.name, got, tt.want)
		}
	}
}
