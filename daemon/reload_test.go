package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/config"
	"github.com/peernet/peernet/daemon"
	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/pluginsdk/plugintest"
	"github.com/peernet/peernet/testing/peernettest"
)

// TestReloadAllowTransitions walks a handle's allow policy through every
// transition between "every trusted peer" (no allow), "no one" (allow = [])
// and "this peer" (allow = [id]), in both directions, and checks after each
// reload that a peer's very next call gets what the file now says, and
// that the reload report names the change. "Everyone" and "no one" were
// once confused by reload, leaving a handle open that the file had closed.
func TestReloadAllowTransitions(t *testing.T) {
	echo, sum := plugintest.Build(t, "github.com/peernet/peernet/plugins/echo")
	dir := t.TempDir()
	path := filepath.Join(dir, "node.hcl")
	caller := peernettest.Node(t, host.Config{})

	policies := map[string]string{
		"absent": "",
		"none":   "allow = []",
		"caller": fmt.Sprintf("allow = [%q]", caller.Identity()),
	}
	reports := map[string]string{
		"absent": "every trusted peer",
		"none":   "no peer",
		"caller": caller.Identity().Short(),
	}
	write := func(policy string) {
		t.Helper()
		cfg := fmt.Sprintf(`
node {
  name     = "reload-test"
  data_dir = "./data"
  listen   = "127.0.0.1:0"
}
peer "caller" {
  id = %q
}
plugin "echo" {
  command = %q
  sha256  = %q
  handle "echo" {
    %s
  }
}
`, caller.Identity(), echo, sum, policies[policy])
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	write("absent")
	d := startDaemon(t, path)
	node := d.Node()
	if err := caller.Trust(node.Identity(), "daemon"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := caller.Connect(ctx, node.Identity(), peernettest.Addr(node)); err != nil {
		t.Fatal(err)
	}
	call := func() error {
		_, err := caller.Call(ctx, node.Identity(), "echo", []byte("hi"))
		return err
	}
	check := func(policy string) {
		t.Helper()
		err := call()
		if policy == "none" {
			if !errors.Is(err, host.ErrForbidden) {
				t.Fatalf("allow %s: call = %v, want forbidden", policy, err)
			}
		} else if err != nil {
			t.Fatalf("allow %s: call = %v, want success", policy, err)
		}
	}
	check("absent")

	steps := []string{"none", "caller", "absent", "caller", "none", "absent"}
	from := "absent"
	for _, to := range steps {
		write(to)
		rep, err := d.Reload(ctx)
		if err != nil {
			t.Fatalf("reload %s -> %s: %v", from, to, err)
		}
		want := fmt.Sprintf("~echo (handle echo allow: %s -> %s)", reports[from], reports[to])
		if !slices.Contains(rep.Plugins, want) {
			t.Errorf("reload %s -> %s reports %q, want %q", from, to, rep.Plugins, want)
		}
		check(to)
		from = to
	}

	// Reloading an unchanged file reports nothing and changes nothing.
	rep, err := d.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Plugins) != 0 {
		t.Errorf("reload of an unchanged file reports %q", rep.Plugins)
	}
	check(from)
}

// startDaemon starts a daemon from the file at path, shut down at cleanup.
func startDaemon(t *testing.T, path string) *daemon.Daemon {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Start(context.Background(), cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return d
}
