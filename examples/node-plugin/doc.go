// Package nodeplugin holds the test of plugin.js, a tiny PeerNet plugin in
// Node.js written from docs/plugin-protocol.md alone, run behind the
// node's plugin driver. It skips when /usr/bin/node is missing (.ci/run
// installs Debian's nodejs).
package nodeplugin
