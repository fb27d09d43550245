package pluginsdk_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/internal/channel"
	"github.com/peernet/peernet/rpc"
	"github.com/peernet/peernet/testing/dochex"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

// pluginProtocolDoc is the normative description of the plugin protocol.
const pluginProtocolDoc = "../docs/plugin-protocol.md"

// The keys of the examples: a caller, and a peer the plugin calls.
var (
	callerKey = bytes.Repeat([]byte{0x11}, 32)
	peerKey   = bytes.Repeat([]byte{0x22}, 32)
	zeroKey   = make([]byte, 32)
)

func keyed(key []byte, args string) []byte { return append(append([]byte(nil), key...), args...) }

// docJSON returns v as the node's code encodes it.
func docJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPluginProtocolExamples decodes the examples of docs/plugin-protocol.md
// §14, checks their fields and JSON bodies against the code's, and
// re-encodes them to the same bytes.
func TestPluginProtocolExamples(t *testing.T) {
	peer, err := trust.PeerIDFromBytes(peerKey)
	if err != nil {
		t.Fatal(err)
	}
	description := docJSON(t, channel.Description{Name: "echo", Version: "1.0.0", Handles: []string{"echo"}, Protocol: pluginsdk.ProtocolVersion})
	configuration := docJSON(t, channel.Configuration{MaxMessageSize: pluginsdk.DefaultMaxMessageSize, Config: []byte(`{"prefix":">"}`), Callbacks: true})
	peers := docJSON(t, []channel.Peer{{ID: peer, Label: "beta", Connected: true, Addr: "127.0.0.1:7946", AddedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Source: "config"}})
	want := map[string]wire.Message{
		"describe":        {Type: wire.TypeCall, ID: 1, Timeout: 10 * time.Second, Handle: channel.HandleDescribe, Body: zeroKey},
		"describe-reply":  {Type: wire.TypeReply, ID: 1, Status: wire.StatusOK, Body: []byte(description)},
		"configure":       {Type: wire.TypeCall, ID: 2, Timeout: 9990 * time.Millisecond, Handle: channel.HandleConfigure, Body: keyed(zeroKey, configuration)},
		"configure-reply": {Type: wire.TypeReply, ID: 2, Status: wire.StatusOK},
		"call":            {Type: wire.TypeCall, ID: 3, Timeout: 5 * time.Second, Handle: "echo", Body: keyed(callerKey, "hi")},
		"call-reply":      {Type: wire.TypeReply, ID: 3, Status: wire.StatusOK, Body: []byte(">hi")},
		"send":            {Type: wire.TypeSend, Handle: "echo", Body: keyed(callerKey, "x")},
		"callback":        {Type: wire.TypeCall, ID: 1, Timeout: 2 * time.Second, Handle: "greet", Body: peerKey},
		"callback-reply":  {Type: wire.TypeReply, ID: 1, Status: wire.Status(rpc.StatusNotConnected), Body: []byte("peer is not connected")},
		"peers":           {Type: wire.TypeCall, ID: 2, Handle: channel.HandlePeers, Body: zeroKey},
		"peers-reply":     {Type: wire.TypeReply, ID: 2, Status: wire.StatusOK, Body: []byte(peers)},
		"cancel":          {Type: wire.TypeCancel, ID: 4},
		"goaway":          {Type: wire.TypeGoaway, Code: wire.GoawayReplaced},
		"ping":            {Type: wire.TypePing, Opaque: 0x0102030405060708},
		"pong":            {Type: wire.TypePong, Opaque: 0x0102030405060708},
	}
	examples := dochex.Examples(t, pluginProtocolDoc, "14. Examples")
	for name, b := range examples {
		w, ok := want[name]
		if !ok {
			t.Errorf("example %q is not checked by this test", name)
			continue
		}
		got, err := decodeOne(b)
		if err != nil {
			t.Errorf("example %q: %v", name, err)
			continue
		}
		if got.Type != w.Type || got.ID != w.ID || got.Timeout != w.Timeout || got.Handle != w.Handle ||
			got.Status != w.Status || got.Code != w.Code || got.Opaque != w.Opaque || !bytes.Equal(got.Body, w.Body) {
			t.Errorf("example %q decodes as %+v\nwant %+v", name, got, w)
		}
		enc, err := wire.AppendMessage(nil, &got, 0)
		if err != nil || !bytes.Equal(enc, b) {
			t.Errorf("example %q re-encodes as %x (%v), want %x", name, enc, err, b)
		}
	}
	for name := range want {
		if _, ok := examples[name]; !ok {
			t.Errorf("example %q is missing from %s", name, pluginProtocolDoc)
		}
	}

	// §12: the PeerID of the example key, in the text that follows it.
	ex := dochex.Examples(t, pluginProtocolDoc, "12. PeerIDs")
	id, err := trust.PeerIDFromBytes(ex["peerid"])
	if err != nil {
		t.Fatalf("example peerid: %v", err)
	}
	raw, err := os.ReadFile(pluginProtocolDoc)
	if err != nil {
		t.Fatal(err)
	}
	if id != peer || !bytes.Contains(raw, []byte("`"+id.String()+"`")) {
		t.Errorf("%s does not show the PeerID %s of its example key", pluginProtocolDoc, id)
	}
}

// decodeOne decodes b, one whole message, accepting local statuses as the
// channel does.
func decodeOne(b []byte) (wire.Message, error) {
	d := wire.NewDecoder(bytes.NewReader(b), 0)
	d.AcceptLocalStatuses()
	var m wire.Message
	if err := d.Decode(&m); err != nil {
		return m, err
	}
	m.Body = d.Take(&m)
	if rest := d.Decode(&wire.Message{}); rest != io.EOF {
		return m, rest
	}
	return m, nil
}

// TestPluginProtocolSession plays the node's messages of
// docs/plugin-protocol.md §14 to a Go plugin, which must answer with
// exactly the plugin's messages shown there.
func TestPluginProtocolSession(t *testing.T) {
	ex := dochex.Examples(t, pluginProtocolDoc, "14. Examples")
	var prefix []byte
	cfg := pluginsdk.Config{
		Name:    "echo",
		Version: "1.0.0",
		Handlers: map[string]pluginsdk.Handler{"echo": pluginsdk.HandlerFunc(func(_ context.Context, req *pluginsdk.Request) ([]byte, error) {
			return append(append([]byte(nil), prefix...), req.Args...), nil
		})},
		Configure: func(_ context.Context, _ pluginsdk.Host, config []byte) error {
			var c struct{ Prefix string }
			err := json.Unmarshal(config, &c)
			prefix = []byte(c.Prefix)
			return err
		},
	}
	node, plugin := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- pluginsdk.ServeConn(context.Background(), plugin, cfg) }()
	defer node.Close()
	if err := node.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ send, expect string }{
		{"describe", "describe-reply"},
		{"configure", "configure-reply"},
		{"call", "call-reply"},
		{"goaway", "goaway"},
	} {
		if _, err := node.Write(ex[step.send]); err != nil {
			t.Fatalf("writing %s: %v", step.send, err)
		}
		got, err := readMessage(node)
		if err != nil {
			t.Fatalf("reading the answer to %s: %v", step.send, err)
		}
		if !bytes.Equal(got, ex[step.expect]) {
			t.Fatalf("the plugin answered %s with %x, want %s: %x", step.send, got, step.expect, ex[step.expect])
		}
	}
	// Both ends have retired the channel: the plugin closes it and returns.
	if _, err := readMessage(node); err != io.EOF {
		t.Fatalf("after the goaways: %v, want the end of the channel", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
}

// readMessage reads one whole message, length prefix included.
func readMessage(r io.Reader) ([]byte, error) {
	var head [wire.LengthSize]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	b := make([]byte, wire.LengthSize+int(binary.BigEndian.Uint32(head[:])))
	copy(b, head[:])
	_, err := io.ReadFull(r, b[wire.LengthSize:])
	return b, err
}
