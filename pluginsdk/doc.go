// Package pluginsdk implements the plugin side of PeerNet: everything a
// plugin author imports to serve handles from a separate, crash-isolated
// process.
//
// A plugin is a main package that builds a Config and calls Serve:
//
//	func main() {
//		pluginsdk.Serve(pluginsdk.Config{
//			Name:    "echo",
//			Version: "1.0.0",
//			Handlers: map[string]pluginsdk.Handler{
//				"echo": pluginsdk.HandlerFunc(func(ctx context.Context, req *pluginsdk.Request) ([]byte, error) {
//					return req.Args, nil
//				}),
//			},
//		})
//	}
//
// The node starts the binary through hashicorp/go-plugin, from a sealed
// copy pinned by its digest, with one end of a Unix socket pair as its
// descriptor 3: the call channel. On it the node asks the plugin to
// describe itself, configures it, and then calls it, with the network's
// own messages (docs/plugin-protocol.md); the plugin's Host
// callbacks travel the other way on the same channel. go-plugin's gRPC
// server (on a Unix socket in a directory only the node's user can reach;
// no TLS) carries only go-plugin's own services: stdio and shutdown.
//
// # Handlers
//
// Each call runs in its own goroutine, so handlers must be safe for
// concurrent use. A handler sees the caller's verified PeerID and a context
// carrying the caller's deadline; the context is cancelled when the caller
// gives up, the host drops the call, or the plugin is stopped.
//
// What the caller sees:
//   - a nil error: the result bytes (for a send, the result is discarded);
//   - an error: "handler error" with err.Error() as the message, or "deadline
//     exceeded"/"canceled" when the error is the context's own;
//   - a panic: "handler crashed" with the panic value. The panic is recovered
//     and logged with its stack, and the plugin keeps serving other calls: a
//     panic is isolated to its call. A process that dies (os.Exit, a fatal
//     runtime error, kill -9) is detected and restarted by the node;
//   - a result larger than the host's maximum message size: "too large".
//
// # Logging and output
//
// Serve logs JSON through go-hclog to stderr, where the node re-logs each
// entry at its level, tagged with the plugin's name. Anything the plugin
// writes to os.Stdout or os.Stderr is forwarded to the node's log as well;
// stdout must never be written to before Serve, because go-plugin uses it
// for its handshake.
//
// # Testing
//
// Package plugintest runs a Config in-process, or a built binary as a real
// process, behind the same host-side driver the node uses.
package pluginsdk
