package nodeplugin_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/peernet/peernet/pluginsdk"
	"github.com/peernet/peernet/pluginsdk/plugintest"
	"github.com/peernet/peernet/testing/peernettest"
	"github.com/peernet/peernet/trust"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// interpreter is what plugin.js's "#!" line names.
const interpreter = "/usr/bin/node"

// TestPlugin runs plugin.js behind the node's plugin driver: its
// description, its handles, a callback, and both ways to stop.
func TestPlugin(t *testing.T) {
	if _, err := os.Stat(interpreter); err != nil {
		t.Skipf("%s is missing (Debian package nodejs; .ci/run installs it): %v", interpreter, err)
	}
	data, err := os.ReadFile("plugin.js")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	peer := func(b byte) pluginsdk.PeerID {
		id, err := trust.PeerIDFromBytes(bytes.Repeat([]byte{b}, 32))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	host := &plugintest.Host{PeersFunc: func(context.Context) ([]pluginsdk.PeerInfo, error) {
		return []pluginsdk.PeerInfo{{ID: peer(1), Label: "a", Connected: true}, {ID: peer(2), Label: "b"}, {ID: peer(3), Label: "c", Connected: true}}, nil
	}}
	p := plugintest.StartProcess(t, "plugin.js", plugintest.Options{SHA256: sum, Host: host})
	if d := p.Client().Description(); d.Name != "node-example" || d.Version != "1.0.0" || len(d.Handles) != 2 {
		t.Fatalf("description %+v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), peernettest.Timeout)
	defer cancel()
	for _, tt := range []struct {
		handle, args, want string
		err                error
	}{
		{handle: "js.echo", args: "hi", want: "hi"},
		{handle: "js.echo", args: "", want: ""},
		{handle: "js.peers", want: "2"},
		{handle: "nope", err: pluginsdk.ErrNoSuchHandle},
	} {
		out, err := p.Call(ctx, peer(9), tt.handle, []byte(tt.args))
		if string(out) != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("%s(%q) = %q, %v; want %q, %v", tt.handle, tt.args, out, err, tt.want, tt.err)
		}
	}
	if err := p.Send(ctx, peer(9), "js.echo", []byte("x")); err != nil {
		t.Errorf("send: %v", err)
	}

	if err := p.Client().Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := p.Client().ExitErr(); err != nil {
		t.Fatalf("after Stop the plugin exited with %v, want status 0", err)
	}

	q := plugintest.StartProcess(t, "plugin.js", plugintest.Options{SHA256: sum})
	if err := syscall.Kill(q.Client().Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-q.Client().Exited():
	case <-ctx.Done():
		t.Fatal("the plugin did not exit on SIGTERM")
	}
	if err := q.Client().ExitErr(); err != nil {
		t.Fatalf("on SIGTERM the plugin exited with %v, want status 0", err)
	}
}
