package daemon_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/config"
	"github.com/peernet/peernet/control"
	"github.com/peernet/peernet/daemon"
	"github.com/peernet/peernet/pluginsdk/plugintest"
)

// nodeProcessEnv makes the test binary run the node whose configuration
// file is its value, as peernet-host run would (see runNodeProcess).
const nodeProcessEnv = "PEERNET_DAEMON_TEST_NODE"

// runNodeProcess starts the daemon of the configuration at path, prints
// "ready" once its plugins are up and runs until it is killed.
func runNodeProcess(path string) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := daemon.Start(context.Background(), cfg, hclog.NewNullLogger()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	select {}
}

// TestNothingLeftAfterKill kills a node process that runs a plugin with
// SIGKILL, twice, and checks what the killed runs leave in the data dir:
// the identity, the trust list, the lock and the control socket, which the
// next start takes over, and nothing of the plugin (it has no socket; its
// process dies with the node). The next start on that data dir serves.
func TestNothingLeftAfterKill(t *testing.T) {
	echo, sum := plugintest.Build(t, "github.com/peernet/peernet/plugins/echo")
	dir := t.TempDir()
	path := filepath.Join(dir, "node.hcl")
	src := nodeBlock + fmt.Sprintf(`
plugin "echo" {
  command = %q
  sha256  = %q
  handle "echo" {}
}
`, echo, sum)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	allowed := map[string]bool{"identity.key": true, "trust.json": true, "lock": true, control.SocketName: true}

	for range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), nodeProcessEnv+"="+path)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("node process: %q, %v", line, err)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		entries, err := os.ReadDir(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !allowed[e.Name()] {
				t.Errorf("after a kill -9 the data dir holds %s", e.Name())
			}
		}
	}

	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := daemon.Start(ctx, cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	st := d.Plugins().Status()
	if len(st) != 1 || st[0].State != "running" {
		t.Fatalf("plugins after the restart: %+v", st)
	}
}
