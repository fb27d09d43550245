package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/config"
	"github.com/peernet/peernet/daemon"
	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/pluginsdk/plugintest"
	"github.com/peernet/peernet/testing/peernettest"
	"github.com/peernet/peernet/testing/poll"
	"github.com/peernet/peernet/trust"
)

// TestServesWhilePluginsStart starts a daemon with a plugin that is quick
// to start and one that waits, before its handshake, for a file the test
// creates only after its checks: a peer's calls to the quick one are
// answered while the slow one is still starting, whose handle answers
// "unavailable" meanwhile; once Start returns, both answer.
func TestServesWhilePluginsStart(t *testing.T) {
	bin, sum := plugintest.Build(t, "github.com/peernet/peernet/host/plugin/internal/testplugin")
	caller := peernettest.Node(t, host.Config{})
	addr := freeAddr(t, false)
	path := filepath.Join(t.TempDir(), "node.hcl")
	gate := filepath.Join(filepath.Dir(path), "slow-may-start")
	src := fmt.Sprintf(`
node {
  name     = "start-test"
  data_dir = "./data"
  listen   = %q
}
peer "caller" {
  id = %q
}
plugin "quick" {
  command = %q
  sha256  = %q
  handle "echo" {}
}
plugin "slow" {
  command = %q
  sha256  = %q
  env     = { TESTPLUGIN_DELAY = "file:%s" }
  handle "version" {}
}
`, addr, caller.Identity(), bin, sum, bin, sum, gate)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}

	// The daemon's identity, made ahead so that the caller can trust it
	// before Start returns.
	ident, _, err := trust.LoadOrCreateIdentity(filepath.Join(filepath.Dir(path), "data"))
	if err != nil {
		t.Fatal(err)
	}
	node := ident.PeerID()
	if err := caller.Trust(node, "daemon"); err != nil {
		t.Fatal(err)
	}

	type started struct {
		d   *daemon.Daemon
		err error
	}
	done := make(chan started, 1)
	go func() {
		d, err := daemon.Start(context.Background(), cfg, hclog.NewNullLogger())
		done <- started{d, err}
	}()
	var st *started
	t.Cleanup(func() {
		if st == nil {
			r := <-done
			st = &r
		}
		if st.d != nil {
			if err := st.d.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	poll.Until(t, "connected to the starting daemon", 0, func() bool {
		return caller.Connect(ctx, node, addr) == nil
	})
	poll.Until(t, "quick plugin answering", 0, func() bool {
		out, err := caller.Call(ctx, node, "echo", []byte("hi"))
		return err == nil && string(out) == "hi"
	})
	_, err = caller.Call(ctx, node, "version", nil)
	select {
	case r := <-done:
		st = &r
		t.Fatalf("Start returned (%v) while the slow plugin waited for its gate", r.err)
	default:
	}
	if !errors.Is(err, host.ErrUnavailable) || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("slow plugin's handle while it starts: %v, want unavailable (starting)", err)
	}

	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := <-done
	st = &r
	if r.err != nil {
		t.Fatalf("Start: %v", r.err)
	}
	if out, err := caller.Call(ctx, node, "version", nil); err != nil || len(out) == 0 {
		t.Fatalf("slow plugin after Start: %q, %v", out, err)
	}
}
