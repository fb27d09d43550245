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

func startNode(root, role string) (*host.Node, error) {
	name := fmt.Sprintf("bench-%s-%d", role, nodeSeq.Add(1))
	return host.Start(host.Config{Name: name, DataDir: filepath.Join(root, name)})
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

// newPeerNetSystem starts two nodes that trust each other, exposes echo
// (no concurrency cap) on one and connects the other to it.
func newPeerNetSystem() (sys system, err error) {
	root, err := dataDirRoot()
	if err != nil {
		return system{}, err
	}
	var nodes []*host.Node
	cleanup := func() {
		for _, n := range nodes {
			n.Close()
		}
		os.RemoveAll(root)
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	server, err := startNode(root, "server")
	if err != nil {
		return system{}, err
	}
	nodes = append(nodes, server)
	client, err := startNode(root, "client")
	if err != nil {
		return system{}, err
	}
	nodes = append(nodes, client)
	if err := trustEach(client, server); err != nil {
		return system{}, err
	}
	if err := server.Expose(echoHandle, echoHandler, host.ExposeOptions{MaxConcurrent: -1}); err != nil {
		return system{}, err
	}
	addr := server.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Connect(ctx, server.Identity(), addr); err != nil {
		return system{}, err
	}
	return system{
		name:   "PeerNet",
		client: peerNetClient{client, server.Identity()},
		connect: func(ctx context.Context) (time.Duration, error) {
			return peerNetFirstReply(ctx, root, server)
		},
		close: cleanup,
	}, nil
}

// peerNetFirstReply starts a fresh node that trusts server and is trusted
// by it (not timed), then times its TCP connect, handshake and first call.
func peerNetFirstReply(ctx context.Context, root string, server *host.Node) (time.Duration, error) {
	n, err := startNode(root, "dialer")
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
