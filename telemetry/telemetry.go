// Package telemetry implements the Prometheus metrics of a PeerNet node and
// its plugins: requests served by handle and status, their latency,
// handshakes and their failures, connections, and plugin state.
package telemetry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/host/plugin"
	"github.com/peernet/peernet/wire"
)

// Metrics collects a node's metrics. It is a host.Observer; give it to the
// node's Config, then Watch the node and its supervisor. Safe for
// concurrent use.
type Metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	handshakes *prometheus.CounterVec
	refused    *prometheus.CounterVec
}

var _ host.Observer = (*Metrics)(nil)

// New returns metrics with nothing watched yet, in a registry of their own
// that also holds the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peernet_requests_total",
			Help: "Inbound calls and sends by handle, kind and status. Requests for handles that are not exposed have handle=\"\".",
		}, []string{"handle", "kind", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "peernet_request_duration_seconds",
			Help:    "Run time of the handlers of inbound calls and sends, by handle.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 4, 10), // 50 µs to 13 s
		}, []string{"handle"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peernet_handshakes_total",
			Help: "Finished handshakes by direction (inbound, outbound) and result (ok or the failure).",
		}, []string{"direction", "result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peernet_handshakes_refused_total",
			Help: "Inbound sockets turned away by admission control, by reason: evicted (stalled before the dialer's first message, for a newer socket), over_limit (closed at accept), busy (verdict sent to a peer with too many connections).",
		}, []string{"reason"}),
	}
	for _, r := range []string{host.RefusedEvicted, host.RefusedOverLimit, host.RefusedBusy} {
		m.refused.WithLabelValues(r) // exported as 0 before the first refusal
	}
	m.reg.MustRegister(m.requests, m.latency, m.handshakes, m.refused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Served implements host.Observer.
func (m *Metrics) Served(handle string, kind host.Kind, status wire.Status, d time.Duration) {
	m.requests.WithLabelValues(handle, kind.String(), status.String()).Inc()
	if d > 0 {
		m.latency.WithLabelValues(handle).Observe(d.Seconds())
	}
}

// Handshake implements host.Observer.
func (m *Metrics) Handshake(inbound bool, err error) {
	dir := "outbound"
	if inbound {
		dir = "inbound"
	}
	m.handshakes.WithLabelValues(dir, handshakeResult(err)).Inc()
}

// HandshakeRefused implements host.Observer.
func (m *Metrics) HandshakeRefused(reason string) {
	m.refused.WithLabelValues(reason).Inc()
}

// handshakeResult names a handshake's outcome with a small fixed set of
// values.
func handshakeResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, wire.ErrWrongPeer):
		return "wrong_peer"
	case errors.Is(err, wire.ErrNotTrusted):
		return "not_trusted"
	case errors.Is(err, wire.ErrNotTrustedByPeer):
		return "not_trusted_by_peer"
	case errors.Is(err, wire.ErrBadMagic), errors.Is(err, wire.ErrVersion):
		return "not_peernet"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "timeout"
	}
	return "error"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Watch adds gauges read from node and sup (which may be nil) at each
// scrape: peers trusted and connected, inbound requests in flight, and each
// plugin's state, restarts and calls in flight.
func (m *Metrics) Watch(node *host.Node, sup *plugin.Supervisor) {
	m.reg.MustRegister(&nodeCollector{node: node, sup: sup})
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

var (
	peersDesc    = prometheus.NewDesc("peernet_peers", "Trusted peers by state (connected, disconnected).", []string{"state"}, nil)
	inflightDesc = prometheus.NewDesc("peernet_inflight_requests", "Inbound calls and sends running now.", nil, nil)
	pluginDesc   = prometheus.NewDesc("peernet_plugin_state", "1 for each plugin's current state.", []string{"plugin", "state"}, nil)
	restartsDesc = prometheus.NewDesc("peernet_plugin_restarts_total", "Restarts of each plugin after crashes.", []string{"plugin"}, nil)
	genDesc      = prometheus.NewDesc("peernet_plugin_generation", "Each plugin's current generation (1 + restarts + swaps).", []string{"plugin"}, nil)
	pluginInDesc = prometheus.NewDesc("peernet_plugin_inflight_calls", "Calls and sends in flight in each plugin's serving generation.", []string{"plugin"}, nil)
	pluginStates = []plugin.State{plugin.StateStarting, plugin.StateRunning, plugin.StateRestarting, plugin.StateFailed, plugin.StateRevoked, plugin.StateStopped}
)

// nodeCollector reads gauges from the node and supervisor at scrape time,
// so the hot paths pay nothing for them.
type nodeCollector struct {
	node *host.Node
	sup  *plugin.Supervisor
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{peersDesc, inflightDesc, pluginDesc, restartsDesc, genDesc, pluginInDesc} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	var up, down float64
	for _, p := range c.node.Peers() {
		if p.Connected {
			up++
		} else {
			down++
		}
	}
	ch <- prometheus.MustNewConstMetric(peersDesc, prometheus.GaugeValue, up, "connected")
	ch <- prometheus.MustNewConstMetric(peersDesc, prometheus.GaugeValue, down, "disconnected")
	ch <- prometheus.MustNewConstMetric(inflightDesc, prometheus.GaugeValue, float64(c.node.Inflight()))
	if c.sup == nil {
		return
	}
	for _, p := range c.sup.Status() {
		for _, s := range pluginStates {
			v := 0.0
			if p.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(pluginDesc, prometheus.GaugeValue, v, p.Name, string(s))
		}
		ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(p.Restarts), p.Name)
		ch <- prometheus.MustNewConstMetric(genDesc, prometheus.GaugeValue, float64(p.Generation), p.Name)
		ch <- prometheus.MustNewConstMetric(pluginInDesc, prometheus.GaugeValue, float64(p.InFlight), p.Name)
	}
}
