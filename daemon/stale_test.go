package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/config"
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

// TestStaleSocketDirsRemoved kills a node process that runs a plugin with
// SIGKILL, which leaves the plugin's socket directory in data/sockets, and
// checks that the next start on that data dir removes it and says so at
// debug level.
func TestStaleSocketDirsRemoved(t *testing.T) {
	echo, sum := plugintest.Build(t, "github.com/peernet/peernet/plugins/echo")
	dir := plugintest.SocketDir(t) // short enough for data/sockets to be used
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
	sockets := filepath.Join(dir, "data", "sockets")

	// Each run killed leaves its directory; the next run removes it (once
	// they piled up, one per kill).
	var stale []string
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
		dirs, _ := filepath.Glob(filepath.Join(sockets, "plugin-dir*"))
		if len(dirs) != 1 || (stale != nil && dirs[0] == stale[0]) {
			t.Fatalf("after a kill -9, socket directories %v; want the killed run's alone (the one before was %v)", dirs, stale)
		}
		stale = dirs
	}

	var mu sync.Mutex
	var logBuf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logBuf.Write(p)
	})})
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := daemon.Start(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	for _, s := range stale {
		if _, err := os.Lstat(s); !os.IsNotExist(err) {
			t.Errorf("stale socket directory %s after the next start: %v, want it removed", s, err)
		}
	}
	mu.Lock()
	logged := logBuf.String()
	mu.Unlock()
	if !strings.Contains(logged, "removed stale plugin socket directories: count=1") {
		t.Errorf("log does not say that the stale directory was removed:\n%s", logged)
	}
	// The running plugin has its own, fresh directory.
	if dirs, _ := filepath.Glob(filepath.Join(sockets, "plugin-dir*")); len(dirs) != 1 {
		t.Errorf("socket directories while one plugin runs: %v, want one", dirs)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
