// Command unaryechoplugin is the plugin process of peernet-bench's anchor:
// a plain go-plugin gRPC plugin serving package unaryecho's Echo RPC. The
// benchmark builds and starts it; it is not meant to be run by hand.
package main

import (
	"github.com/hashicorp/go-plugin"

	"github.com/peernet/peernet/cmd/peernet-bench/internal/unaryecho"
)

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: unaryecho.Handshake(),
		Plugins:         plugin.PluginSet{unaryecho.PluginName: unaryecho.Plugin{}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
