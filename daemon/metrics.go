package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/peernet/peernet/telemetry"
)

// metricsServer serves /metrics for Prometheus.
type metricsServer struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

func serveMetrics(addr string, m *telemetry.Metrics) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	s := &metricsServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	return s, nil
}

func (s *metricsServer) addr() string { return s.ln.Addr().String() }

func (s *metricsServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
	<-s.done
}

// MetricsAddr is the address the metrics endpoint listens on, or "" if the
// configuration has no telemetry block.
func (d *Daemon) MetricsAddr() string {
	if d.metrics == nil {
		return ""
	}
	return d.metrics.addr()
}
