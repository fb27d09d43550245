package host_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/peernet/peernet/host"
)

// Two nodes in one program: bob exposes a handle, alice calls it.
func Example() {
	dir, _ := os.MkdirTemp("", "peernet-example-")
	defer os.RemoveAll(dir)

	alice, err := host.Start(host.Config{Name: "example-alice", DataDir: dir + "/alice"})
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	bob, err := host.Start(host.Config{Name: "example-bob", DataDir: dir + "/bob"})
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()

	// Each side must trust the other before they can talk.
	alice.Trust(bob.Identity(), "bob")
	bob.Trust(alice.Identity(), "alice")

	bob.Expose("greet", host.HandlerFunc(func(ctx context.Context, r *host.Request) ([]byte, error) {
		return []byte("hello, " + string(r.Args)), nil
	}), host.ExposeOptions{})

	ctx := context.Background()
	if err := alice.Connect(ctx, bob.Identity(), bob.Addr().String()); err != nil {
		log.Fatal(err)
	}
	res, err := alice.Call(ctx, bob.Identity(), "greet", []byte("alice"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(res))
	// Output: hello, alice
}
