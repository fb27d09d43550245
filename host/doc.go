// Package host implements a PeerNet node: an Ed25519 identity and trust
// list kept in a data dir, a TCP listener, and authenticated, encrypted
// connections to trusted peers over which it calls and serves named handles.
//
// A node talks only to peers on its trust list. A handle is closed until it
// is exposed; Expose registers an in-process Handler (plugin processes plug
// in through the same interface). Call is request/reply with a deadline that
// travels to the callee; Send is fire-and-forget.
//
// Between two nodes there is one connection, whoever dialled; when both dial
// at once, both keep the connection dialled by the smaller PeerID and retire
// the other without losing a call. Calls run concurrently in both
// directions on that connection. Quiet connections are pinged; a peer whose
// address is known is redialled with jittered exponential backoff after its
// connection drops.
package host
