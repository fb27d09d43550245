package daemon_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/peernet/peernet/config"
	"github.com/peernet/peernet/control"
	"github.com/peernet/peernet/daemon"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(nodeProcessEnv); path != "" {
		os.Exit(runNodeProcess(path))
	}
	goleak.VerifyTestMain(m)
}

// load writes src as node.hcl in a fresh directory and loads it.
func load(t *testing.T, src string) *config.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const nodeBlock = `
node {
  name     = "daemon-test"
  data_dir = "./data"
  listen   = "127.0.0.1:0"
}
`

// freeAddr returns a loopback address with a port that was free a moment
// ago, and a listener holding it if hold is set.
func freeAddr(t *testing.T, hold bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if hold {
		t.Cleanup(func() { l.Close() })
	} else {
		l.Close()
	}
	return l.Addr().String()
}

func TestMetricsEndpoint(t *testing.T) {
	cfg := load(t, nodeBlock+`
telemetry {
  metrics_listen = "`+freeAddr(t, false)+`"
}
`)
	d, err := daemon.Start(context.Background(), cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + d.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`peernet_peers{state="connected"} 0`, "peernet_inflight_requests 0", "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestStartUsesTheLoadedFile checks that Start runs from the File it is
// given, without reading the file again, and that Reload does read it.
func TestStartUsesTheLoadedFile(t *testing.T) {
	cfg := load(t, nodeBlock)
	if err := os.Remove(cfg.Path); err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Start(context.Background(), cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("Start with the file gone: %v", err)
	}
	defer d.Shutdown(context.Background())
	if got := d.Node().Name(); got != "daemon-test" {
		t.Errorf("node name %q, want daemon-test", got)
	}
	c, err := control.NewClient(control.SocketPath(cfg.Node.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reload(context.Background()); !strings.Contains(err.Error(), cfg.Path) {
		t.Errorf("Reload with the file gone: %v, want an error naming %s", err, cfg.Path)
	}
	if _, err := d.Reload(context.Background()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Reload with the file gone: %v, want fs.ErrNotExist", err)
	}
}

// TestStartFailureStopsEverything makes the last step of Start fail (its
// metrics address is taken) and checks that what came before is undone:
// the control socket is gone, the data dir is unlocked so that a node can
// start on it again, and no goroutine is left (TestMain).
func TestStartFailureStopsEverything(t *testing.T) {
	taken := freeAddr(t, true)
	cfg := load(t, nodeBlock+`
telemetry {
  metrics_listen = "`+taken+`"
}
`)
	d, err := daemon.Start(context.Background(), cfg, hclog.NewNullLogger())
	if d != nil || err == nil || !strings.Contains(err.Error(), "metrics") {
		t.Fatalf("Start with the metrics address taken: %v, %v; want a nil Daemon and the metrics error", d, err)
	}
	if _, err := os.Lstat(control.SocketPath(cfg.Node.DataDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("control socket after a failed Start: %v, want it removed", err)
	}
	cfg.Telemetry.MetricsListen = ""
	d, err = daemon.Start(context.Background(), cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("Start on the same data dir after a failed Start: %v", err)
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
