package telemetry_test

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/telemetry"
	"github.com/peernet/peernet/testing/peernettest"
)

func TestMetrics(t *testing.T) {
	m := telemetry.New()
	a := peernettest.Node(t, host.Config{})
	b := peernettest.Node(t, host.Config{Observer: m})
	m.Watch(b, nil)
	peernettest.TrustEach(t, a, b)
	peernettest.Connect(t, a, b)
	b.Expose("echo", host.HandlerFunc(func(_ context.Context, r *host.Request) ([]byte, error) { return r.Args, nil }), host.ExposeOptions{})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 3 {
		if _, err := a.Call(ctx, b.Identity(), "echo", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	a.Call(ctx, b.Identity(), "no-such", nil)

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`peernet_requests_total{handle="echo",kind="call",status="ok"} 3`,
		`peernet_requests_total{handle="",kind="call",status="no_such_handle"} 1`,
		`peernet_request_duration_seconds_count{handle="echo"} 3`,
		`peernet_handshakes_total{direction="inbound",result="ok"} 1`,
		`peernet_peers{state="connected"} 1`,
		`peernet_inflight_requests 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}
