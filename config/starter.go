package config

import (
	"fmt"
	"strings"
)

// Settings of the starter file that "peernet-host init" writes.
const (
	// StarterListen is the starter's listen address: this machine only,
	// until the operator chooses to accept peers from elsewhere.
	StarterListen = "127.0.0.1:4040"
	// StarterDataDir is the starter's data_dir, relative to the file.
	StarterDataDir = "./data"
)

// Starter returns a commented starter configuration for a node called name,
// as "peernet-host init" writes it: the node block listening on listen
// (StarterListen when empty) with its data in StarterDataDir next to the
// file, mDNS discovery on only if mdns is set, and an example peer, plugin
// and metrics endpoint commented out. Parse accepts it as is when name is a
// valid node name (letters, digits, '-', '_', '.') and listen a valid
// address; anything else is quoted safely and reported by Parse. The
// caller owns the returned slice.
func Starter(name, listen string, mdns bool) []byte {
	if listen == "" {
		listen = StarterListen
	}
	return fmt.Appendf(nil, starterTemplate, hclQuote(name), hclQuote(StarterDataDir), hclQuote(listen), mdns)
}

const starterTemplate = `# PeerNet node configuration, written by "peernet-host init".
# Every block and attribute is described in docs/configuration.md.
# Relative paths are relative to the directory of this file.

node {
  # The node's name in logs: letters, digits, '-', '_' and '.'.
  name = %s

  # Holds the identity key, the trust list and the lock file. Each node
  # needs a data dir of its own.
  data_dir = %s

  # Where peers connect. Only peers on the trust list get past the
  # handshake. "127.0.0.1:4040" accepts this machine only; use ":4040"
  # (every interface) or this machine's address to accept other hosts.
  listen = %s

  log_level  = "info" # trace, debug, info, warn or error
  log_format = "text" # text or json
}

# mDNS: announce this node on the local network, and learn the addresses
# of trusted peers that announce themselves. Set true to turn it on.
discovery {
  mdns = %t
}

# A peer this node trusts. Run "peernet-host id" on it for its ID.
# peer "beta" {
#   id      = "pn1..."
#   address = "192.0.2.7:4040" # optional; otherwise learnt by discovery
# }

# A plugin, and the handles of it this node exposes to peers.
# plugin "echo" {
#   command = "./plugins/echo"
#   sha256  = "..." # the output of: sha256sum ./plugins/echo
#   handle "echo" {
#     allow = ["beta"] # peer labels or IDs; omit to allow every trusted peer
#   }
# }

# Serve Prometheus metrics.
# telemetry {
#   metrics_listen = "127.0.0.1:9090"
# }
`

// hclQuote returns s as an HCL quoted string literal that evaluates to s.
func hclQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f || r == 0xfffd:
			// Control characters, and bytes that are not UTF-8 (which
			// Parse will report against the name).
			fmt.Fprintf(&b, `\u%04x`, r)
		case (r == '{') && i > 0 && (s[i-1] == '$' || s[i-1] == '%'):
			// "${" and "%{" start template sequences; HCL escapes them by
			// doubling the sigil, which was already written once.
			b.WriteByte(s[i-1])
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
