package daemon_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/daemon"
)

func TestMetricsEndpoint(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.hcl")
	// The metrics address must name a port: borrow a free one.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := l.Addr().String()
	l.Close()
	cfg := `
node {
  name     = "metrics-test"
  data_dir = "./data"
  listen   = "127.0.0.1:0"
}
telemetry {
  metrics_listen = "` + metricsAddr + `"
}
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Start(path, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())

	resp, err := http.Get("http://" + d.MetricsAddr() + "/metrics")
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
