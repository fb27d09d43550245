// Package pythonplugin holds the tests of plugin.py, the reference PeerNet
// plugin in Python 3 (docs/plugin-protocol.md): against the node's plugin
// driver, and end to end between two nodes. They skip when /usr/bin/python3
// is missing (.ci/run installs it).
package pythonplugin
