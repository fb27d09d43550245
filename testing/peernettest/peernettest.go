// Package peernettest implements helpers for tests that run real PeerNet
// nodes: start N nodes in temporary data dirs that trust each other and are
// connected, in a line of a test, closed when the test ends.
package peernettest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/testing/poll"
)

// Timeout bounds every wait in this package.
const Timeout = 10 * time.Second

var seq atomic.Int64

// Node starts a node from cfg, filling an empty Name (unique in the process)
// and DataDir (a fresh temporary directory), and a Logger that writes to the
// test log when the test is run with -v. The node is closed at cleanup.
func Node(t testing.TB, cfg host.Config) *host.Node {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("node%d", seq.Add(1))
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Logger == nil && testing.Verbose() {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: testWriter{t}})
	}
	n, err := host.Start(cfg)
	if err != nil {
		t.Fatalf("starting node %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// Nodes starts count nodes with configurations derived from base (Name and
// DataDir are filled per node), makes every node trust every other, and
// connects every pair. It returns once all pairs are connected both ways.
func Nodes(t testing.TB, count int, base host.Config) []*host.Node {
	t.Helper()
	nodes := make([]*host.Node, count)
	for i := range nodes {
		cfg := base
		cfg.Name, cfg.DataDir = "", ""
		nodes[i] = Node(t, cfg)
	}
	for i, a := range nodes {
		for j, b := range nodes {
			if i != j {
				TrustEach(t, a, b)
			}
		}
	}
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			Connect(t, a, b)
		}
	}
	return nodes
}

// TrustEach makes a and b trust each other, labelled by their names.
func TrustEach(t testing.TB, a, b *host.Node) {
	t.Helper()
	if err := a.Trust(b.Identity(), b.Name()); err != nil {
		t.Fatalf("%s trusting %s: %v", a.Name(), b.Name(), err)
	}
	if err := b.Trust(a.Identity(), a.Name()); err != nil {
		t.Fatalf("%s trusting %s: %v", b.Name(), a.Name(), err)
	}
}

// Connect connects a to b and waits until both see the connection.
func Connect(t testing.TB, a, b *host.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := a.Connect(ctx, b.Identity(), Addr(b)); err != nil {
		t.Fatalf("%s connecting to %s: %v", a.Name(), b.Name(), err)
	}
	Eventually(t, fmt.Sprintf("%s sees %s connected", b.Name(), a.Name()), func() bool {
		return b.Connected(a.Identity())
	})
}

// Addr is the loopback address at which n can be dialled.
func Addr(n *host.Node) string { return fmt.Sprintf("127.0.0.1:%d", n.Port()) }

// Eventually polls cond until it holds, failing the test with what if it
// does not within Timeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, what, Timeout, cond)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
