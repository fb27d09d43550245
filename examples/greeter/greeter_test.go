package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/plugintest"
)

// A peer ID for tests; any valid "pn1…" text will do.
var bob = mustPeer("pn1byhraeiscmkbkfqxdamrugy4dupb6ibbeirsijjge4ucskrlfqwqs2nvha")

func mustPeer(s string) pluginsdk.PeerID {
	id, err := pluginsdk.ParsePeerID(s)
	if err != nil {
		panic(err)
	}
	return id
}

func TestGreet(t *testing.T) {
	tests := []struct {
		name    string
		config  string // the plugin block's config, as JSON
		caller  pluginsdk.PeerID
		handle  string
		args    string
		want    string
		wantErr string // the handler error's message
	}{
		{name: "by name", handle: "greet", args: "Ann", want: "Hello, Ann!"},
		{name: "configured", config: `{"greeting":"Hej"}`, handle: "greet", args: "Ann", want: "Hej, Ann!"},
		{name: "farewell", handle: "farewell", args: "Ann", want: "Goodbye, Ann!"},
		{name: "the caller", caller: bob, handle: "greet", want: "Hello, " + bob.Short() + "!"},
		{name: "nobody", handle: "greet", wantErr: "greet: want a name of 1 to 64 bytes of UTF-8"},
		{name: "too long", handle: "greet", args: strings.Repeat("n", 65), wantErr: "greet: want a name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var config []byte
			if tt.config != "" {
				config = []byte(tt.config)
			}
			p := plugintest.Start(t, newGreeter().config(), plugintest.Options{Config: config})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := p.Call(ctx, tt.caller, tt.handle, []byte(tt.args))
			if tt.wantErr != "" {
				var he *pluginsdk.Error
				if !errors.As(err, &he) || !strings.HasPrefix(he.Message, tt.wantErr) {
					t.Fatalf("err = %v, want a handler error starting %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestRelay(t *testing.T) {
	host := &plugintest.Host{
		CallFunc: func(_ context.Context, peer pluginsdk.PeerID, handle string, _ []byte) ([]byte, error) {
			if peer != bob {
				return nil, pluginsdk.ErrNotConnected
			}
			return []byte("Hello from bob!"), nil
		},
	}
	p := plugintest.Start(t, newGreeter().config(), plugintest.Options{Host: host})
	ctx := context.Background()

	got, err := p.Call(ctx, pluginsdk.PeerID{}, "relay", []byte(bob.String()))
	if err != nil || string(got) != "Hello from bob!" {
		t.Fatalf("relay to bob: %q, %v", got, err)
	}
	if calls := host.Calls(); len(calls) != 1 || calls[0].Peer != bob || calls[0].Handle != "greet" {
		t.Fatalf("host saw %+v, want one call of greet on bob", calls)
	}

	other := mustPeer("pn1culbogazdinryhi6d4qccirdeqssmjzifevcwlbnfyxtamjsgm2ka55sxm")
	var he *pluginsdk.Error
	_, err = p.Call(ctx, pluginsdk.PeerID{}, "relay", []byte(other.String()))
	if !errors.As(err, &he) || !strings.Contains(he.Message, "is not connected") {
		t.Fatalf("relay to a stranger: %v", err)
	}
}

// TestProcess runs the real binary, as the node will.
func TestProcess(t *testing.T) {
	path, sum := plugintest.Build(t, ".")
	p := plugintest.StartProcess(t, path, plugintest.Options{SHA256: sum, Config: []byte(`{"greeting":"Hi"}`)})

	d := p.Client().Description()
	if d.Name != "greeter" || strings.Join(d.Handles, ",") != "farewell,greet,relay" {
		t.Fatalf("description %+v", d)
	}
	got, err := p.Call(context.Background(), bob, "greet", []byte("Ann"))
	if err != nil || string(got) != "Hi, Ann!" {
		t.Fatalf("greet: %q, %v", got, err)
	}
	// Without a Host (Options.Host is nil), callbacks fail: relay says so.
	if _, err := p.Call(context.Background(), bob, "relay", []byte(bob.String())); !errors.As(err, new(*pluginsdk.Error)) {
		t.Fatalf("relay without a host: %v", err)
	}
}
