package plugintest_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/plugintest"
)

const echoPlugin = "github.com/peernet/peernet/plugins/echo"

func TestBuildCachesAndCopies(t *testing.T) {
	p1, sum1 := plugintest.Build(t, echoPlugin)
	p2, sum2 := plugintest.Build(t, echoPlugin)
	if p1 == p2 {
		t.Fatalf("both builds returned %s; want private copies", p1)
	}
	if sum1 != sum2 || len(sum1) != 64 {
		t.Fatalf("checksums %q and %q", sum1, sum2)
	}
	fi, err := os.Stat(p1)
	if err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("binary %s: %v, %v", p1, fi.Mode(), err)
	}
}

func TestStartAndHost(t *testing.T) {
	peer := pluginsdk.PeerID{}
	host := &plugintest.Host{}
	var got error
	cfg := pluginsdk.Config{
		Name: "kit",
		Handlers: map[string]pluginsdk.Handler{
			"call": pluginsdk.HandlerFunc(func(ctx context.Context, r *pluginsdk.Request) ([]byte, error) {
				return nil, nil
			}),
		},
		Configure: func(ctx context.Context, h pluginsdk.Host, _ []byte) error {
			_, got = h.Call(ctx, peer, "x", []byte("a"))
			return nil
		},
	}
	p := plugintest.Start(t, cfg, plugintest.Options{Host: host})
	if _, err := p.Call(context.Background(), peer, "call", nil); err != nil {
		t.Fatal(err)
	}
	// The zero PeerID is not a peer: the host refuses it before CallFunc.
	if !errors.Is(got, pluginsdk.ErrBadRequest) {
		t.Fatalf("callback with the zero peer: %v", got)
	}
	if n := len(host.Calls()); n != 0 {
		t.Fatalf("host recorded %d calls for a refused callback", n)
	}
}

func TestHostDefaults(t *testing.T) {
	h := &plugintest.Host{}
	ctx := context.Background()
	if _, err := h.Call(ctx, pluginsdk.PeerID{}, "x", nil); !errors.Is(err, pluginsdk.ErrNotConnected) {
		t.Fatalf("Call: %v", err)
	}
	if err := h.Send(ctx, pluginsdk.PeerID{}, "y", []byte("b")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if peers, err := h.Peers(ctx); peers != nil || err != nil {
		t.Fatalf("Peers: %v, %v", peers, err)
	}
	calls := h.Calls()
	if len(calls) != 3 || calls[0].Method != "call" || calls[1].Method != "send" || string(calls[1].Args) != "b" || calls[2].Method != "peers" {
		t.Fatalf("recorded %+v", calls)
	}
}
