// Package wire implements the PeerNet wire protocol of docs/protocol.md: the
// preamble and Noise XX handshake that authenticate both peers by their
// Ed25519 identities (§2–§3), the record layer that carries an encrypted
// byte stream (§4), and the messages that travel in that stream (§5).
//
// A connection starts with Client on the dialer's side and Server on the
// responder's, both over an already connected net.Conn and both using a
// Local built once from the node's identity:
//
//	local, err := wire.NewLocal(identity, wire.Config{}) // 4 MiB messages, DefaultSuite()
//	...
//	conn, err := wire.Client(ctx, tcpConn, local, peer)      // dialer
//	conn, err := wire.Server(ctx, tcpConn, local, authorize) // responder
//
// The dialer learns the responder's identity in message 2 and aborts before
// revealing its own unless it is the peer it meant to reach; the responder
// learns the dialer's in message 3 and answers with a verdict (accept, not
// trusted, busy). The resulting *Conn is a net.Conn whose bytes travel in
// records sealed with the suite the dialer offered (AES-256-GCM where its CPU
// has AES instructions, else ChaCha20-Poly1305; Conn.Suite); a record that
// fails to authenticate ends it. Each side announces the largest message it
// accepts, and Conn.PeerMaxMessageSize is the bound on what to send.
//
// Messages are encoded with AppendMessage (or AppendHeader, with the body
// written from where it lies by Conn.WriteBuffers) and read from a Conn
// with a Decoder.
package wire
