// Package discovery implements address discovery for PeerNet: sources of
// hints that a peer, named by its PeerID, can be reached at some address.
//
// MDNS announces our node and browses for others on the local links with
// multicast DNS (RFC 6762) and DNS-SD (RFC 6763) under the service type
// "_peernet._tcp.local."; Static replays a fixed list. The instance name and
// the host name of a node are its PeerID (see message.go for the records).
// MDNS probes for its names before announcing, answers service enumeration,
// answers the question asked, by unicast when asked to (QU bit, legacy
// unicast queries), and never answers its own queries.
//
// A hint is never proof: discovery does not dial, and whoever acts on a hint
// must still authenticate the peer in the handshake (package host bounds
// how often it dials a hinted address). MDNS bounds what an announcer can
// make it do: packets over 9000 bytes are dropped unread, malformed ones are
// dropped, at most MaxTracked peers and 4 addresses per peer are remembered,
// a peer is reported again at a known address at most once a second, we
// multicast answers at most once a second per link and send at most 20
// unicast answers a second per link.
package discovery
