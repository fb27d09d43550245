// Command embed runs two PeerNet nodes in one process, alice and bob, and
// walks through the library API: trust, connect, expose, call, send, revoke.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/peernet/peernet/host"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run() error {
	dir, err := os.MkdirTemp("", "peernet-embed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	alice, err := host.Start(host.Config{Name: "alice", DataDir: dir + "/alice"})
	if err != nil {
		return err
	}
	defer alice.Close()
	bob, err := host.Start(host.Config{Name: "bob", DataDir: dir + "/bob"})
	if err != nil {
		return err
	}
	defer bob.Close()
	step("alice is %s on port %d", alice.Identity(), alice.Port())
	step("bob   is %s on port %d", bob.Identity(), bob.Port())

	step("alice and bob trust each other")
	if err := alice.Trust(bob.Identity(), "bob"); err != nil {
		return err
	}
	if err := bob.Trust(alice.Identity(), "alice"); err != nil {
		return err
	}

	step("bob exposes \"echo\" and \"inbox\"")
	bob.Expose("echo", host.HandlerFunc(func(_ context.Context, r *host.Request) ([]byte, error) {
		return r.Args, nil
	}), host.ExposeOptions{})
	inbox := make(chan string, 1)
	bob.Expose("inbox", host.HandlerFunc(func(_ context.Context, r *host.Request) ([]byte, error) {
		inbox <- fmt.Sprintf("%q from %s", r.Args, r.Caller.Short())
		return nil, nil
	}), host.ExposeOptions{})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	step("alice connects to bob at 127.0.0.1:%d", bob.Port())
	if err := alice.Connect(ctx, bob.Identity(), fmt.Sprintf("127.0.0.1:%d", bob.Port())); err != nil {
		return err
	}

	res, err := alice.Call(ctx, bob.Identity(), "echo", []byte("hello, bob"))
	if err != nil {
		return err
	}
	step("alice calls echo: %q", res)

	if err := alice.Send(ctx, bob.Identity(), "inbox", []byte("fire and forget")); err != nil {
		return err
	}
	step("alice sends to inbox; bob received %s", <-inbox)

	bob.Revoke("echo")
	_, err = alice.Call(ctx, bob.Identity(), "echo", nil)
	step("bob revokes echo; alice's next call fails: %v (ErrNoSuchHandle: %t)", err, errors.Is(err, host.ErrNoSuchHandle))

	step("shutting down")
	return nil
}
