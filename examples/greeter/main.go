// Command greeter is a small PeerNet plugin, the one docs/plugins.md builds
// step by step. It serves three handles:
//
//	greet     returns "<greeting>, <name>!" for the name in the arguments,
//	          or for the calling peer when there are none
//	farewell  the same, with "Goodbye"
//	relay     asks the peer whose ID is in the arguments to greet this
//	          node, through the node's Host callbacks, and returns the answer
//
// The plugin block's config object may set {"greeting": "Hej"}; the default
// greeting is "Hello".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/peernet/peernet/pluginsdk"
)

func main() {
	pluginsdk.Serve(newGreeter().config())
}

// greeter holds what Configure sets. Configure runs once, before any call,
// and the handlers only read these fields, so they need no lock.
type greeter struct {
	greeting string
	host     pluginsdk.Host
}

func newGreeter() *greeter { return &greeter{greeting: "Hello"} }

func (g *greeter) config() pluginsdk.Config {
	return pluginsdk.Config{
		Name:    "greeter",
		Version: "1.0.0",
		Handlers: map[string]pluginsdk.Handler{
			"greet":    pluginsdk.HandlerFunc(g.greet),
			"farewell": pluginsdk.HandlerFunc(g.greet),
			"relay":    pluginsdk.HandlerFunc(g.relay),
		},
		Configure: g.configure,
	}
}

// configure receives the node's Host callbacks and the plugin block's config
// object as JSON ("{}" when the block sets none; nil in a test that passes
// no Config). An error here stops the plugin from starting; the node logs it.
func (g *greeter) configure(_ context.Context, host pluginsdk.Host, config []byte) error {
	g.host = host
	if len(config) == 0 {
		return nil
	}
	var c struct {
		Greeting string `json:"greeting"`
	}
	if err := json.Unmarshal(config, &c); err != nil {
		return fmt.Errorf("greeter: reading config: %w", err)
	}
	if c.Greeting != "" {
		g.greeting = c.Greeting
	}
	return nil
}

// maxName bounds the name a caller may pass.
const maxName = 64

// greet serves both greet and farewell: req.Handle says which was called.
func (g *greeter) greet(_ context.Context, req *pluginsdk.Request) ([]byte, error) {
	name := string(req.Args)
	if name == "" && !req.Caller.IsZero() {
		// The node verified the caller's key during the handshake.
		name = req.Caller.Short()
	}
	if name == "" || len(name) > maxName || !utf8.ValidString(name) {
		// The caller gets "handler error" with this text.
		return nil, fmt.Errorf("greet: want a name of 1 to %d bytes of UTF-8", maxName)
	}
	if req.Kind == pluginsdk.KindSend {
		return nil, nil // nobody reads the result of a send
	}
	word := g.greeting
	if req.Handle == "farewell" {
		word = "Goodbye"
	}
	return fmt.Appendf(nil, "%s, %s!", word, name), nil
}

// relay asks another peer to greet this node. ctx carries the caller's
// deadline and is cancelled when the caller gives up; the callback inherits
// both, bounded further to two seconds.
func (g *greeter) relay(ctx context.Context, req *pluginsdk.Request) ([]byte, error) {
	peer, err := pluginsdk.ParsePeerID(string(req.Args))
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := g.host.Call(ctx, peer, "greet", nil)
	if errors.Is(err, pluginsdk.ErrNotConnected) {
		return nil, fmt.Errorf("relay: %s is not connected", peer.Short())
	}
	return out, err
}
