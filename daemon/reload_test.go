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
	"github.com/peernet/peernet/host/plugin"
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

// TestReloadReport checks that a reload reports what it changes in the
// plugins measured against what runs, not against the file last read: a
// revoked plugin it restores, a failed plugin it restarts, nothing for a
// file reverted to the running configuration after a failed swap; and
// that a revoked plugin is listed as revoked, and a plugin's last error is
// cleared by a later successful swap.
func TestReloadReport(t *testing.T) {
	echo, sum := plugintest.Build(t, "github.com/peernet/peernet/plugins/echo")
	dir := t.TempDir()
	// The same binary under another path: a swap to a new generation.
	echo2 := filepath.Join(dir, "echo2")
	data, err := os.ReadFile(echo)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(echo2, data, 0o755); err != nil {
		t.Fatal(err)
	}
	const wrong = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"
	path := filepath.Join(dir, "node.hcl")
	type plug struct{ name, command, sum, handle string }
	write := func(ps ...plug) {
		t.Helper()
		src := "node {\n  name     = \"report\"\n  data_dir = \"./data\"\n  listen   = \"127.0.0.1:0\"\n}\n"
		for _, p := range ps {
			src += fmt.Sprintf("plugin %q {\n  command = %q\n  sha256  = %q\n  handle %q {}\n}\n", p.name, p.command, p.sum, p.handle)
		}
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	good := plug{"echo", echo, sum, "echo"}
	write(good)
	d := startDaemon(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	status := func(name string) plugin.Status {
		t.Helper()
		for _, st := range d.Plugins().Status() {
			if st.Name == name {
				return st
			}
		}
		t.Fatalf("plugin %s is not listed", name)
		return plugin.Status{}
	}
	steps := []struct {
		what    string
		before  func()       // done before the file is written and reloaded
		file    []plug       // the file to reload
		report  []string     // what the reload must report for the plugins
		failed  bool         // whether some plugin failed to come up
		after   plugin.State // echo's state after the reload
		lastErr bool         // whether echo has a last error after it
	}{
		{"revoked plugin restored", func() {
			if err := d.Plugins().Remove("echo"); err != nil {
				t.Fatal(err)
			}
			if st := status("echo"); st.State != plugin.StateRevoked || st.Pid != 0 || len(st.Handles) != 0 {
				t.Errorf("echo after revoke: %+v; want listed as revoked, with no process and no handles", st)
			}
		}, []plug{good}, []string{"+echo (restored: it was revoked)"}, false, plugin.StateRunning, false},
		{"revoked handle restored", func() {
			if err := d.Plugins().RevokeHandle("echo", "echo"); err != nil {
				t.Fatal(err)
			}
		}, []plug{good}, []string{"+echo (restored: it was revoked)"}, false, plugin.StateRunning, false},
		{"failed swap", nil, []plug{{"echo", echo2, wrong, "echo"}}, []string{"~echo (binary)"}, true, plugin.StateRunning, true},
		{"file reverted to the running configuration", nil, []plug{good}, nil, false, plugin.StateRunning, true},
		{"successful swap", nil, []plug{{"echo", echo2, sum, "echo"}}, []string{"~echo (binary)"}, false, plugin.StateRunning, false},
		{"new plugin that fails", nil, []plug{{"echo", echo2, sum, "echo"}, {"bad", echo, wrong, "whoami"}}, []string{"+bad"}, true, plugin.StateRunning, false},
		{"failed plugin restarted as it was", nil, []plug{{"echo", echo2, sum, "echo"}, {"bad", echo, wrong, "whoami"}}, []string{"~bad (restarted: it had failed)"}, true, plugin.StateRunning, false},
		{"failed plugin fixed", nil, []plug{{"echo", echo2, sum, "echo"}, {"bad", echo, sum, "whoami"}}, []string{"~bad (restarted: it had failed; binary)"}, false, plugin.StateRunning, false},
		{"plugin removed", nil, []plug{{"echo", echo2, sum, "echo"}}, []string{"-bad"}, false, plugin.StateRunning, false},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		write(s.file...)
		rep, err := d.Reload(ctx)
		if rep == nil {
			t.Fatalf("%s: reload refused: %v", s.what, err)
		}
		if (err != nil) != s.failed {
			t.Errorf("%s: reload error %v; want one: %v", s.what, err, s.failed)
		}
		if !slices.Equal(rep.Plugins, s.report) {
			t.Errorf("%s: reload reports %q, want %q", s.what, rep.Plugins, s.report)
		}
		if st := status("echo"); st.State != s.after || (st.LastError != "") != s.lastErr {
			t.Errorf("%s: echo is %s with last error %q; want %s, with a last error: %v", s.what, st.State, st.LastError, s.after, s.lastErr)
		}
	}
}
