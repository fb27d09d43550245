package wire

import (
	"errors"
	"fmt"

	"github.com/peernet/peernet/trust"
)

// Errors returned by the handshake and the record layer; match them with
// errors.Is. Handshake errors are wrapped with the step that failed
// ("reading handshake message 2: ..."); I/O errors from the underlying
// connection are returned as they are (so net.Error timeouts stay
// recognisable), or wrapped with the step during the handshake.
var (
	// ErrBadMagic means the peer's preamble does not start with "PNET": it is
	// not a PeerNet peer (§2).
	ErrBadMagic = errors.New("wire: bad preamble magic (not a PeerNet peer)")

	// ErrVersion means the peer speaks another protocol version (§2). The
	// error is a *VersionError naming both versions.
	ErrVersion = errors.New("wire: protocol version mismatch")

	// ErrSuite means the dialer's preamble offers no suite, several, or one
	// this version does not know, or the responder does not accept the
	// suite the dialer offered (§2).
	ErrSuite = errors.New("wire: cipher suite not supported")

	// ErrHandshakeTooLarge means a handshake message's length prefix exceeds
	// its bound (§3.3); nothing of the message was read.
	ErrHandshakeTooLarge = errors.New("wire: handshake message too large")

	// ErrBadHandshake means a handshake message is malformed or fails Noise
	// authentication (wrong length, bad key, different prologue) (§3).
	ErrBadHandshake = errors.New("wire: bad handshake message")

	// ErrBadPayload means the peer's identity payload is malformed, has an
	// unknown version, or its signature does not bind the Noise static key
	// to the Ed25519 key it names (§3.2).
	ErrBadPayload = errors.New("wire: bad identity payload")

	// ErrWrongPeer means the responder authenticated as a different PeerID
	// than the dialer meant to reach; message 3 was not sent. The error is a
	// *WrongPeerError naming both.
	ErrWrongPeer = errors.New("wire: responder is not the expected peer")

	// ErrNotTrusted is returned by Server when authorize refused the dialer as
	// untrusted; the refusal was sent to the dialer.
	ErrNotTrusted = errors.New("wire: dialer is not trusted")

	// ErrNotTrustedByPeer is returned by Client when the responder refused
	// us because we are not on its trust list (verdict 0x01).
	ErrNotTrustedByPeer = errors.New("wire: refused by peer: not trusted")

	// ErrBusy is returned by Server when authorize refused the dialer as
	// busy; the refusal was sent to the dialer.
	ErrBusy = errors.New("wire: refused dialer: busy")

	// ErrPeerBusy is returned by Client when the responder refused us
	// because it is busy (verdict 0x02).
	ErrPeerBusy = errors.New("wire: refused by peer: busy")

	// ErrBadVerdict means the verdict record is not exactly one known byte,
	// or authorize returned a Verdict outside Accept, RefuseUntrusted and
	// RefuseBusy (§3.4).
	ErrBadVerdict = errors.New("wire: bad verdict")

	// ErrRecordAuth means a record failed to authenticate: it was tampered
	// with, truncated, replayed, reordered or one before it was dropped (§4).
	// The Conn is broken for good.
	ErrRecordAuth = errors.New("wire: record failed authentication")

	// ErrNonceExhausted means a direction used up its 2^64-1 nonces (§4).
	// The Conn is broken for good.
	ErrNonceExhausted = errors.New("wire: record nonce exhausted")

	// ErrBadRecord means a record's length is below the 16-byte tag, zero
	// included (§4). The Conn is broken for good.
	ErrBadRecord = errors.New("wire: bad record")
)

// VersionError reports a protocol version mismatch in the preamble; it
// matches ErrVersion with errors.Is.
type VersionError struct {
	Local  uint8 // the version this side speaks
	Remote uint8 // the version the peer announced
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("wire: protocol version mismatch: we speak %d, peer speaks %d", e.Local, e.Remote)
}

// Is reports whether target is ErrVersion.
func (e *VersionError) Is(target error) bool { return target == ErrVersion }

// WrongPeerError reports that the responder authenticated as a PeerID other
// than the one the dialer meant to reach; it matches ErrWrongPeer with
// errors.Is.
type WrongPeerError struct {
	Expected trust.PeerID // the peer the dialer meant to reach
	Actual   trust.PeerID // the peer that answered
}

func (e *WrongPeerError) Error() string {
	return fmt.Sprintf("wire: responder is not the expected peer: expected %s, got %s", e.Expected, e.Actual)
}

// Is reports whether target is ErrWrongPeer.
func (e *WrongPeerError) Is(target error) bool { return target == ErrWrongPeer }
