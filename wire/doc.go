// Package wire implements the PeerNet wire protocol of docs/protocol.md: the
// preamble and Noise XX handshake that authenticate both peers by their
// Ed25519 identities (§2–§3), the record layer that carries an encrypted
// byte stream (§4), and the messages that travel in that stream (§5).
//
// A connection starts with Client on the dialer's side and Server on the
// responder's, both over an already connected net.Conn and both using a
// Local built once from the node's identity:
//
//	local, err := wire.NewLocal(identity)
//	...
//	conn, err := wire.Client(ctx, tcpConn, local, peer)      // dialer
//	conn, err := wire.Server(ctx, tcpConn, local, authorize) // responder
//
// The dialer learns the responder's identity in message 2 and aborts before
// revealing its own unless it is the peer it meant to reach; the responder
// learns the dialer's in message 3 and answers with a verdict (accept, not
// trusted, busy). The resulting *Conn is a net.Conn whose bytes travel in
// ChaCha20-Poly1305 records; a record that fails to authenticate ends it.
//
// Messages are encoded with AppendMessage and read from a Conn with a
// Decoder.
package wire
