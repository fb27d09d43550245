package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/peernet/peernet/host"
	"github.com/peernet/peernet/trust"
	"github.com/peernet/peernet/wire"
)

const echoHandle = "echo"

// echoHandler answers with its args, which it owns.
var echoHandler = host.HandlerFunc(func(_ context.Context, r *host.Request) ([]byte, error) {
	return r.Args, nil
})

// dataDirRoot makes a directory for the nodes' data dirs. It prefers a
// tmpfs, as the nodes fsync their identity and trust list on every change
// and the benchmark measures the network path, not the disk.
func dataDirRoot() (string, error) {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "peernet-bench-"); err == nil {
			return dir, nil
		}
	}
	return os.MkdirTemp("", "peernet-bench-")
}

// nodeSeq keeps node names unique within the process.
var nodeSeq atomic.Int64

// startNode starts a node whose data dir is under root; it offers suite when
// it dials (zero: the default, AES-GCM on a CPU with AES instructions).
func startNode(root, role string, suite wire.Suite) (*host.Node, error) {
	name := fmt.Sprintf("bench-%s-%d", role, nodeSeq.Add(1))
	return host.Start(host.Config{Name: name, DataDir: filepath.Join(root, name), CipherSuite: suite})
}

type peerNetClient struct {
	n      *host.Node
	server trust.PeerID
}

func (c peerNetClient) echo(ctx context.Context, p []byte) ([]byte, error) {
	return c.n.Call(ctx, c.server, echoHandle, p)
}

func trustEach(a, b *host.Node) error {
	if err := a.Trust(b.Identity(), b.Name()); err != nil {
		return err
	}
	return b.Trust(a.Identity(), a.Name())
}

// nodePair is two started nodes in this process that trust each other, the
// client connected to the server, with their data dirs under root.
type nodePair struct {
	root           string
	server, client *host.Node
}

// startNodePair starts a server node, lets setup expose its handles, then
// starts a client node and connects it with suite. On failure everything
// started is closed again.
func startNodePair(suite wire.Suite, setup func(server *host.Node) error) (p *nodePair, err error) {
	root, err := dataDirRoot()
	if err != nil {
		return nil, err
	}
	p = &nodePair{root: root}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.server, err = startNode(root, "server", suite); err != nil {
		return nil, err
	}
	if p.client, err = startNode(root, "client", suite); err != nil {
		return nil, err
	}
	if err := trustEach(p.client, p.server); err != nil {
		return nil, err
	}
	if err := setup(p.server); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.client.Connect(ctx, p.server.Identity(), p.server.Addr().String()); err != nil {
		return nil, err
	}
	return p, nil
}

// close closes both nodes, waiting for them, and removes their data dirs.
func (p *nodePair) close() {
	for _, n := range []*host.Node{p.client, p.server} {
		if n != nil {
			n.Close()
		}
	}
	os.RemoveAll(p.root)
}

// newPeerNetSystem starts two nodes that trust each other, exposes echo
// (no concurrency cap) on one and connects the other to it, with the
// default suite.
func newPeerNetSystem() (system, error) { return newPeerNetSuiteSystem("PeerNet", 0) }

// newPeerNetChaChaSystem is newPeerNetSystem with ChaChaPoly forced: the
// suite every connection used before version 2.
func newPeerNetChaChaSystem() (system, error) {
	return newPeerNetSuiteSystem(peerNetChaChaName, wire.SuiteChaChaPoly)
}

const peerNetChaChaName = "PeerNet ChaChaPoly"

func newPeerNetSuiteSystem(name string, suite wire.Suite) (system, error) {
	p, err := startNodePair(suite, func(server *host.Node) error {
		return server.Expose(echoHandle, echoHandler, host.ExposeOptions{MaxConcurrent: -1})
	})
	if err != nil {
		return system{}, err
	}
	return system{
		name:   name,
		client: peerNetClient{p.client, p.server.Identity()},
		connect: func(ctx context.Context) (time.Duration, error) {
			return peerNetFirstReply(ctx, p.root, p.server, suite)
		},
		close: p.close,
	}, nil
}

// peerNetFirstReply starts a fresh node that trusts server and is trusted
// by it (not timed), then times its TCP connect, handshake and first call.
func peerNetFirstReply(ctx context.Context, root string, server *host.Node, suite wire.Suite) (time.Duration, error) {
	n, err := startNode(root, "dialer", suite)
	if err != nil {
		return 0, err
	}
	defer func() {
		n.Close()
		server.Untrust(n.Identity()) // closes the server's side, keeps its list short
		os.RemoveAll(filepath.Join(root, n.Name()))
	}()
	if err := trustEach(n, server); err != nil {
		return 0, err
	}
	p := payload(smallPayload)
	t0 := time.Now()
	if err := n.Connect(ctx, server.Identity(), server.Addr().String()); err != nil {
		return 0, err
	}
	r, err := n.Call(ctx, server.Identity(), echoHandle, p)
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	return d, checkEcho(r, p)
}
