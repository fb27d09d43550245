// Command kv is an example PeerNet plugin: a small durable key-value store in
// a bbolt file. See README.md for its configuration and handles.
package main

import (
	"github.com/peernet/peernet/pluginsdk"
)

// version is reported to the node.
const version = "1.0.0"

func main() {
	s := newStore()
	pluginsdk.Serve(s.config())
	s.close()
}
