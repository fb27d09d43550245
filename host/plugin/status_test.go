package plugin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/testing/peernettest"
)

// failWith fails as a handler does with status st and the message
// "reason": the testplugin's status handle, in process.
func failWith(_ context.Context, r *host.Request) ([]byte, error) {
	for s := range 256 {
		st := rpc.Status(s)
		if st.String() != string(r.Args) {
			continue
		}
		switch st {
		case rpc.StatusHandlerError:
			return nil, errors.New("reason")
		case rpc.StatusHandlerCrashed:
			panic("reason")
		}
		return nil, fmt.Errorf("%w: reason", st.Err())
	}
	return nil, fmt.Errorf("no status %q", r.Args)
}

// TestStatusesEndToEnd checks that there is one vocabulary of outcomes: a
// status chosen by a handler in a plugin process reaches a caller on
// another node as the same sentinel, with its message once; and the
// outcome of a plugin's callback to a peer reaches the plugin as the same
// sentinels.
func TestStatusesEndToEnd(t *testing.T) {
	bin := build(t, testPkg)
	nodes := peernettest.Nodes(t, 2, host.Config{MaxMessageSize: 64 << 10})
	a, b := nodes[0], nodes[1] // a runs the plugin, b calls it
	absent := peernettest.Node(t, host.Config{})
	if err := a.Trust(absent.Identity(), "absent"); err != nil {
		t.Fatal(err)
	}
	mustApply(t, supervisor(t, a), config("statuses", bin, "status", "callback"))
	ctx := context.Background()
	aName := a.Identity().Short()

	t.Run("plugin to caller", func(t *testing.T) {
		for _, tt := range []struct {
			status string
			want   error  // the sentinel the caller matches
			text   string // the caller's error text after "call status on A: "
		}{
			{"no_such_handle", host.ErrNoSuchHandle, "no_such_handle: reason"},
			{"forbidden", host.ErrForbidden, "forbidden: reason"},
			{"handler_error", host.ErrHandlerError, "handler_error: reason"},
			{"handler_crashed", host.ErrHandlerCrashed, "handler_crashed: reason"},
			{"unavailable", host.ErrUnavailable, "unavailable: reason"},
			{"overloaded", host.ErrOverloaded, "overloaded: reason"},
			{"deadline_exceeded", context.DeadlineExceeded, "deadline_exceeded: reason"},
			{"too_large", host.ErrTooLarge, "too_large: reason"},
			// The caller's own outcomes cannot travel: the handler failed.
			{"not_connected", host.ErrHandlerError, "handler_error: not_connected: reason"},
			{"connection_lost", host.ErrHandlerError, "handler_error: connection_lost: reason"},
			{"bad_request", host.ErrHandlerError, "handler_error: bad_request: reason"},
		} {
			_, err := b.Call(ctx, a.Identity(), "status", []byte(tt.status))
			var re *host.RemoteError
			if !errors.Is(err, tt.want) || !errors.As(err, &re) {
				t.Errorf("%s: err = %v, want %v", tt.status, err, tt.want)
				continue
			}
			if want := "call status on " + aName + ": " + tt.text; err.Error() != want {
				t.Errorf("%s: err = %q, want %q", tt.status, err, want)
			}
		}
	})

	// b answers the plugin's callbacks with each status too.
	if err := b.Expose("fail", host.HandlerFunc(failWith), host.ExposeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Expose("hang", host.HandlerFunc(func(ctx context.Context, _ *host.Request) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}), host.ExposeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Expose("untrust", host.HandlerFunc(func(ctx context.Context, r *host.Request) ([]byte, error) {
		b.Untrust(r.Caller) // drops the connection the call came on
		<-ctx.Done()
		return nil, ctx.Err()
	}), host.ExposeOptions{}); err != nil {
		t.Fatal(err)
	}
	bName := b.Identity().Short()

	t.Run("callbacks to plugin", func(t *testing.T) {
		type spec struct {
			Peer    string `json:"peer"`
			Handle  string `json:"handle"`
			Args    string `json:"args,omitempty"`
			Timeout string `json:"timeout,omitempty"`
			Size    int    `json:"size,omitempty"`
		}
		fail := func(status string) spec { return spec{Peer: b.Identity().String(), Handle: "fail", Args: status} }
		for _, tt := range []struct {
			name string
			call spec
			want string // the sentinels the plugin matched
			text string // the plugin's error text, "" for any that does not repeat itself
		}{
			{"no_such_handle", fail("no_such_handle"), "ErrNoSuchHandle", "call fail on " + bName + ": no_such_handle: reason"},
			{"forbidden", fail("forbidden"), "ErrForbidden", "call fail on " + bName + ": forbidden: reason"},
			{"handler_error", fail("handler_error"), "ErrHandlerError", "call fail on " + bName + ": handler_error: reason"},
			{"handler_crashed", fail("handler_crashed"), "ErrHandlerCrashed", "call fail on " + bName + ": handler_crashed: reason"},
			{"unavailable", fail("unavailable"), "ErrUnavailable", "call fail on " + bName + ": unavailable: reason"},
			{"overloaded", fail("overloaded"), "ErrOverloaded", "call fail on " + bName + ": overloaded: reason"},
			{"too_large remote", fail("too_large"), "ErrTooLarge", "call fail on " + bName + ": too_large: reason"},
			{"deadline_exceeded remote", fail("deadline_exceeded"), "DeadlineExceeded", "call fail on " + bName + ": deadline_exceeded: reason"},
			{"no handle", spec{Peer: b.Identity().String(), Handle: "nosuch"}, "ErrNoSuchHandle", ""},
			{"too_large local", spec{Peer: b.Identity().String(), Handle: "fail", Size: 65 << 10}, "ErrTooLarge", ""},
			{"bad_request", spec{Peer: b.Identity().String(), Handle: ""}, "ErrBadRequest", ""},
			{"not_connected", spec{Peer: absent.Identity().String(), Handle: "fail"}, "ErrNotConnected", ""},
			{"deadline", spec{Peer: b.Identity().String(), Handle: "hang", Timeout: "100ms"}, "DeadlineExceeded", ""},
		} {
			args, _ := json.Marshal(tt.call)
			out, err := b.Call(ctx, a.Identity(), "callback", args)
			if err != nil {
				t.Fatalf("%s: callback: %v", tt.name, err)
			}
			checkCallback(t, tt.name, string(out), tt.want, tt.text)
		}
	})

	t.Run("connection lost", func(t *testing.T) {
		// A third node calls a's plugin, which calls b's "untrust": b
		// drops its connection to a during the call.
		c := peernettest.Node(t, host.Config{})
		peernettest.TrustEach(t, a, c)
		peernettest.Connect(t, c, a)
		args, _ := json.Marshal(map[string]string{"peer": b.Identity().String(), "handle": "untrust"})
		out, err := c.Call(ctx, a.Identity(), "callback", args)
		if err != nil {
			t.Fatal(err)
		}
		checkCallback(t, "connection_lost", string(out), "ErrConnLost", "")
	})
}

// checkCallback checks the testplugin's report of a callback's outcome.
func checkCallback(t *testing.T, name, out, want, text string) {
	t.Helper()
	matched, got, _ := strings.Cut(out, "|")
	if matched != want {
		t.Errorf("%s: plugin matched %q (%s), want %q", name, matched, got, want)
	}
	if text != "" && got != text {
		t.Errorf("%s: plugin saw %q, want %q", name, got, text)
	}
	for _, s := range []string{"no_such_handle", "forbidden", "handler_error", "handler_crashed", "unavailable", "overloaded",
		"deadline_exceeded", "too_large", "not_connected", "connection_lost", "bad_request", "not_trusted"} {
		if strings.Count(got, s) > 1 {
			t.Errorf("%s: %q repeats %s", name, got, s)
		}
	}
}
