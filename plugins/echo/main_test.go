package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/pluginclient"
	"github.com/peernet/peernet/pluginsdk/plugintest"
	"github.com/peernet/peernet/testing/poll"
	"github.com/peernet/peernet/trust"
)

func testPeer(t testing.TB, seed byte) pluginsdk.PeerID {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	id, err := trust.PeerIDFromPublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// startBoth runs the plugin in-process and as a real process.
func startBoth(t *testing.T, opts plugintest.Options) map[string]*plugintest.Plugin {
	t.Helper()
	path, sum := plugintest.Build(t, ".")
	popts := opts
	popts.SHA256 = sum
	return map[string]*plugintest.Plugin{
		"in-process": plugintest.Start(t, newPlugin().config(), opts),
		"process":    plugintest.StartProcess(t, path, popts),
	}
}

func TestHandles(t *testing.T) {
	caller := testPeer(t, 1)
	callerText, _ := caller.MarshalText()
	tests := []struct {
		name    string
		caller  pluginsdk.PeerID
		handle  string
		args    string
		want    string
		wantErr error
	}{
		{name: "echo", handle: "echo", args: "hello", want: "hello"},
		{name: "echo empty", handle: "echo", args: "", want: ""},
		{name: "whoami", caller: caller, handle: "whoami", want: string(callerText)},
		{name: "whoami no caller", handle: "whoami", want: ""},
		{name: "sleep", handle: "sleep", args: "1ms", want: "1ms"},
		{name: "sleep bad args", handle: "sleep", args: "soon", wantErr: &pluginsdk.Error{}},
		{name: "crash panic", handle: "crash", args: "panic", wantErr: pluginsdk.ErrHandlerCrashed},
		{name: "crash bad args", handle: "crash", args: "maybe", wantErr: &pluginsdk.Error{}},
		{name: "unknown handle", handle: "nope", wantErr: pluginsdk.ErrNoSuchHandle},
	}
	for mode, p := range startBoth(t, plugintest.Options{}) {
		for _, tt := range tests {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				got, err := p.Call(ctx, tt.caller, tt.handle, []byte(tt.args))
				if tt.wantErr != nil {
					var he *pluginsdk.Error
					if _, ok := tt.wantErr.(*pluginsdk.Error); ok {
						if !errors.As(err, &he) {
							t.Fatalf("err = %v, want a *HandlerError", err)
						}
					} else if !errors.Is(err, tt.wantErr) {
						t.Fatalf("err = %v, want %v", err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tt.want {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
			})
		}
		// The panic above must not have stopped the plugin.
		if got, err := p.Call(context.Background(), caller, "echo", []byte("still here")); err != nil || string(got) != "still here" {
			t.Fatalf("%s: after panic: %q, %v", mode, got, err)
		}
	}
}

func TestSleepHonoursDeadline(t *testing.T) {
	for mode, p := range startBoth(t, plugintest.Options{}) {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := p.Call(ctx, pluginsdk.PeerID{}, "sleep", []byte("1m"))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want deadline exceeded", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("call took %v", d)
			}
			// The handler saw the deadline too and returned: nothing stays in
			// flight.
			poll.Until(t, "no call in flight", 0, func() bool { return p.Client().InFlight() == 0 })
		})
	}
}

func TestPeersAndCallThroughHost(t *testing.T) {
	peer := testPeer(t, 2)
	host := &plugintest.Host{
		PeersFunc: func(context.Context) ([]pluginsdk.PeerInfo, error) {
			return []pluginsdk.PeerInfo{{ID: peer, Label: "bob", Connected: true, Addr: "127.0.0.1:4000"}}, nil
		},
		CallFunc: func(_ context.Context, p pluginsdk.PeerID, handle string, args []byte) ([]byte, error) {
			if p != peer {
				return nil, pluginsdk.ErrNotConnected
			}
			if handle == "fail" {
				return nil, fmt.Errorf("%w: boom", pluginsdk.ErrHandlerError)
			}
			return append([]byte("pong:"), args...), nil
		},
	}
	for mode, p := range startBoth(t, plugintest.Options{Host: host}) {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			out, err := p.Call(ctx, pluginsdk.PeerID{}, "peers", nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []peerJSON
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].ID != peer || got[0].Label != "bob" || !got[0].Connected || got[0].Addr != "127.0.0.1:4000" {
				t.Fatalf("peers = %+v", got)
			}

			args, _ := json.Marshal(map[string]any{"peer": peer, "handle": "ping", "args": "x"})
			if out, err := p.Call(ctx, pluginsdk.PeerID{}, "call", args); err != nil || string(out) != "pong:x" {
				t.Fatalf("call = %q, %v", out, err)
			}
			// The remote handler's error reaches the plugin typed; the
			// plugin returns it, so the caller sees a handler error whose
			// message names the failed call once.
			args, _ = json.Marshal(map[string]any{"peer": peer, "handle": "fail"})
			var he *pluginsdk.Error
			want := "call fail on " + peer.Short() + ": handler_error: boom"
			if _, err := p.Call(ctx, pluginsdk.PeerID{}, "call", args); !errors.As(err, &he) || !errors.Is(err, pluginsdk.ErrHandlerError) || he.Message != want {
				t.Fatalf("call fail: %v; want a handler error %q", err, want)
			}
		})
	}
	if n := len(host.Calls()); n != 6 {
		t.Fatalf("host saw %d callbacks, want 6: %+v", n, host.Calls())
	}
}

func TestNoHost(t *testing.T) {
	p := plugintest.Start(t, newPlugin().config(), plugintest.Options{})
	_, err := p.Call(context.Background(), pluginsdk.PeerID{}, "peers", nil)
	var he *pluginsdk.Error
	if !errors.As(err, &he) || !errors.Is(err, pluginsdk.ErrUnavailable) || he.Message != "no host callbacks" {
		t.Fatalf("err = %v; want unavailable: no host callbacks", err)
	}
}

func TestCrashExit(t *testing.T) {
	path, sum := plugintest.Build(t, ".")
	p := plugintest.StartProcess(t, path, plugintest.Options{SHA256: sum})
	c := p.Client()
	// A call in flight when the process dies fails at once with ErrCrashed.
	slow := make(chan error, 1)
	go func() {
		_, err := p.Call(context.Background(), pluginsdk.PeerID{}, "sleep", []byte("1m"))
		slow <- err
	}()
	poll.Until(t, "the call in flight", 0, func() bool { return c.InFlight() == 1 })
	if _, err := p.Call(context.Background(), pluginsdk.PeerID{}, "crash", []byte("exit")); !errors.Is(err, pluginclient.ErrCrashed) {
		t.Fatalf("crash call: %v, want ErrCrashed", err)
	}
	select {
	case err := <-slow:
		if !errors.Is(err, pluginclient.ErrCrashed) {
			t.Fatalf("in-flight call: %v, want ErrCrashed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight call still waiting after the process died")
	}
	select {
	case <-c.Exited():
	case <-time.After(5 * time.Second):
		t.Fatal("Exited not closed")
	}
	if err := c.ExitErr(); err == nil || err.Error() != "exit status 3" {
		t.Fatalf("ExitErr = %v, want exit status 3", err)
	}
	if _, err := p.Call(context.Background(), pluginsdk.PeerID{}, "echo", nil); !errors.Is(err, pluginclient.ErrCrashed) {
		t.Fatalf("call after crash: %v", err)
	}
}

// TestPrefix starts the binary with "-prefix x." and finds every handle
// served under the prefix only.
func TestPrefix(t *testing.T) {
	path, sum := plugintest.Build(t, ".")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pluginclient.Launch(ctx, pluginclient.LaunchConfig{
		Name:   "echo",
		Path:   path,
		SHA256: sum,
		Args:   []string{"-prefix", "x."},
		Logger: plugintest.TestLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	want := []string{"x.call", "x.crash", "x.echo", "x.peers", "x.sleep", "x.whoami"}
	if got := c.Description().Handles; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("handles %v, want %v", got, want)
	}
	got, err := c.Call(ctx, &pluginsdk.Request{Handle: "x.echo", Args: []byte("hi")})
	if err != nil || string(got) != "hi" {
		t.Fatalf("x.echo: %q, %v; want \"hi\"", got, err)
	}
	if _, err := c.Call(ctx, &pluginsdk.Request{Handle: "echo", Args: []byte("hi")}); !errors.Is(err, pluginsdk.ErrNoSuchHandle) {
		t.Fatalf("echo without the prefix: %v, want %v", err, pluginsdk.ErrNoSuchHandle)
	}
}
