// Command echo is an example PeerNet plugin, and the plugin the SDK's and the
// node's tests run.
//
// Handles:
//
//	echo     returns its arguments unchanged.
//	whoami   returns the caller's PeerID in text form ("" for no caller).
//	peers    returns the node's trusted peers as JSON, through the Host
//	         callbacks: [{"id":"pn1…","label":"…","connected":true,"addr":"…"}].
//	call     calls a peer through the node: args are JSON
//	         {"peer":"pn1…","handle":"…","args":"…"}; returns the peer's result.
//
// Test aids, not for production exposure:
//
//	sleep    args are a Go duration ("50ms"); sleeps that long or until the
//	         call is cancelled, then returns the args.
//	crash    args "panic" panic the handler (the call fails with "handler
//	         crashed", the plugin keeps serving); args "exit" end the process
//	         with exit status 3, as a plugin crash would.
//
// Started with the arguments "-prefix P", it serves every handle as P
// followed by its name ("P" "echo", ...), so that many plugins run from this
// one binary can expose their handles side by side on one node (as
// peernet-bench does with 100 of them).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/peernet/peernet/pluginsdk"
)

// version is reported to the node. A variable, so a build can stamp it:
// go build -ldflags "-X main.version=2.0.0".
var version = "1.0.0"

func main() {
	prefix := flag.String("prefix", "", "serve every handle under this prefix")
	flag.Parse()
	cfg := newPlugin().config()
	if *prefix != "" {
		prefixed := make(map[string]pluginsdk.Handler, len(cfg.Handlers))
		for name, h := range cfg.Handlers {
			prefixed[*prefix+name] = h
		}
		cfg.Handlers = prefixed
	}
	pluginsdk.Serve(cfg)
}

type echoPlugin struct {
	host pluginsdk.Host // set by Configure, before any call
}

func newPlugin() *echoPlugin { return &echoPlugin{} }

func (p *echoPlugin) config() pluginsdk.Config {
	return pluginsdk.Config{
		Name:    "echo",
		Version: version,
		Handlers: map[string]pluginsdk.Handler{
			"echo":   pluginsdk.HandlerFunc(echo),
			"whoami": pluginsdk.HandlerFunc(whoami),
			"sleep":  pluginsdk.HandlerFunc(sleep),
			"crash":  pluginsdk.HandlerFunc(crash),
			"peers":  pluginsdk.HandlerFunc(p.peers),
			"call":   pluginsdk.HandlerFunc(p.call),
		},
		Configure: func(_ context.Context, host pluginsdk.Host, _ []byte) error {
			p.host = host
			return nil
		},
	}
}

func echo(_ context.Context, req *pluginsdk.Request) ([]byte, error) {
	return req.Args, nil
}

func whoami(_ context.Context, req *pluginsdk.Request) ([]byte, error) {
	if req.Caller.IsZero() {
		return nil, nil
	}
	return req.Caller.MarshalText()
}

func sleep(ctx context.Context, req *pluginsdk.Request) ([]byte, error) {
	d, err := time.ParseDuration(string(req.Args))
	if err != nil {
		return nil, fmt.Errorf("sleep: %w", err)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return req.Args, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func crash(_ context.Context, req *pluginsdk.Request) ([]byte, error) {
	switch string(req.Args) {
	case "panic":
		panic("echo: crash requested")
	case "exit":
		os.Exit(3)
	}
	return nil, errors.New(`crash: args must be "panic" or "exit"`)
}

type peerJSON struct {
	ID        pluginsdk.PeerID `json:"id"`
	Label     string           `json:"label"`
	Connected bool             `json:"connected"`
	Addr      string           `json:"addr,omitempty"`
}

func (p *echoPlugin) peers(ctx context.Context, _ *pluginsdk.Request) ([]byte, error) {
	peers, err := p.host.Peers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]peerJSON, 0, len(peers))
	for _, pi := range peers {
		out = append(out, peerJSON{ID: pi.ID, Label: pi.Label, Connected: pi.Connected, Addr: pi.Addr})
	}
	return json.Marshal(out)
}

func (p *echoPlugin) call(ctx context.Context, req *pluginsdk.Request) ([]byte, error) {
	var a struct {
		Peer   pluginsdk.PeerID `json:"peer"`
		Handle string           `json:"handle"`
		Args   string           `json:"args"`
	}
	if err := json.Unmarshal(req.Args, &a); err != nil {
		return nil, fmt.Errorf("call: %w", err)
	}
	return p.host.Call(ctx, a.Peer, a.Handle, []byte(a.Args))
}
