package wire

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/flynn/noise"
	"github.com/peernet/peernet/trust"
)

// MaxHandshakeMessage bounds handshake messages 2 and 3 (§3.3); message 1 is
// exactly 32 bytes. A longer length prefix ends the handshake before the
// message is read.
const MaxHandshakeMessage = 1024

// DefaultHandshakeTimeout bounds a handshake whose context has no deadline
// (§3.5).
const DefaultHandshakeTimeout = 5 * time.Second

// Handshake constants (§3).
const (
	// noisePrologue is mixed into the Noise handshake hash: a peer with a
	// different prologue fails at message 2 or 3 (§3.1).
	noisePrologue = "PeerNet/2 Noise XX"

	// handshakeLenSize is the size of each handshake message's length prefix.
	handshakeLenSize = 2

	// msg1Len is the exact length of message 1: the dialer's ephemeral key
	// and an empty, unencrypted payload.
	msg1Len = x25519KeyLen

	// Identity payload layout (§3.2):
	//
	//	offset size field
	//	0      1    payload version, payloadVersion
	//	1      32   Ed25519 public key (the sender's PeerID)
	//	33     4    max_message_size u32: the largest L the sender accepts (§5)
	//	37     64   Ed25519 signature over staticKeyContext || noise_static_pub
	payloadVersion = 2
	maxSizeLen     = 4
	payloadLen     = 1 + ed25519.PublicKeySize + maxSizeLen + ed25519.SignatureSize

	// staticKeyContext separates the payload signature from any other use of
	// the identity key.
	staticKeyContext = "PeerNet/1 noise static key\x00"
)

// Bounds on the maximum message size a peer may announce (§3.2): enough for
// a call with the longest handle and some args, and at most 1 GiB, so that a
// peer cannot talk the sender into messages no one should buffer.
const (
	MinMaxMessageSize = 1024
	MaxMaxMessageSize = 1 << 30
)

// cipherSuite returns Noise_XX_25519_<suite>_BLAKE2s's primitives (§3.1)
// with dh as its "25519".
func cipherSuite(dh noise.DHFunc, s Suite) noise.CipherSuite {
	return noise.NewCipherSuite(dh, s.noiseCipher(), noise.HashBLAKE2s)
}

// Config is what a Local announces besides its identity. The zero value
// works: the defaults are documented per field.
type Config struct {
	// MaxMessageSize is the largest message L (type + body, §5) this side
	// accepts; the peer learns it from the identity payload and never
	// sends more. Zero means DefaultMaxMessageSize; otherwise it must be
	// within MinMaxMessageSize..MaxMaxMessageSize.
	MaxMessageSize int

	// Suite is the cipher suite this side offers when it dials. Zero means
	// DefaultSuite(): AES-256-GCM on a CPU with hardware AES, else
	// ChaChaPoly. As a responder a Local accepts either suite whatever
	// this says.
	Suite Suite
}

// aLongTimeAgo is a deadline in the past, to unblock I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// Signer is the subset of trust.Identity the handshake needs: the identity's
// PeerID and an Ed25519 signature by its private key. Sign must be safe for
// concurrent use; NewLocal calls it once.
type Signer interface {
	PeerID() trust.PeerID
	Sign(msg []byte) []byte
}

// Local is this node's handshake material: its identity and a Noise static
// key pair bound to it by a signature made once, in NewLocal. A Local is
// immutable and safe for concurrent use by any number of handshakes.
type Local struct {
	id      trust.PeerID
	static  *ecdh.PrivateKey
	keypair noise.DHKey // raw bytes of static; shared read-only with noise
	payload []byte      // this side's identity payload (§3.2)
	maxSize int         // the max_message_size in payload
	suite   Suite       // what Client offers

	// rand feeds the ephemeral keys; nil means crypto/rand. Tests set it to
	// make a handshake transcript reproducible.
	rand io.Reader
	// version is the protocol version announced; 0 means ProtocolVersion.
	// Tests set it to play a peer of another version.
	version uint8
}

func (l *Local) protocolVersion() uint8 {
	if l.version != 0 {
		return l.version
	}
	return ProtocolVersion
}

// NewLocal creates a fresh Noise static key pair and binds it to id with one
// signature (§3.2). It checks that the signature verifies under id's PeerID,
// so a mismatched Signer fails here rather than at every peer, and checks
// cfg; it does not keep cfg.
func NewLocal(id Signer, cfg Config) (*Local, error) {
	static, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("wire: generating Noise static key: %w", err)
	}
	return newLocal(id, static, cfg)
}

// newLocal is NewLocal with a given static key, for reproducible examples.
func newLocal(id Signer, static *ecdh.PrivateKey, cfg Config) (*Local, error) {
	if id == nil {
		return nil, errors.New("wire: NewLocal needs a Signer")
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.MaxMessageSize < MinMaxMessageSize || cfg.MaxMessageSize > MaxMaxMessageSize {
		return nil, fmt.Errorf("wire: Config.MaxMessageSize %d is outside %d..%d", cfg.MaxMessageSize, MinMaxMessageSize, MaxMaxMessageSize)
	}
	if cfg.Suite == 0 {
		cfg.Suite = DefaultSuite()
	}
	if !cfg.Suite.valid() {
		return nil, fmt.Errorf("wire: Config.Suite %v is not %v or %v", cfg.Suite, SuiteChaChaPoly, SuiteAESGCM)
	}
	peer := id.PeerID()
	if peer.IsZero() {
		return nil, errors.New("wire: NewLocal: signer has the zero PeerID")
	}
	pub := static.PublicKey().Bytes()
	msg := staticKeyMessage(pub)
	sig := id.Sign(msg[:])
	if !peer.Verify(msg[:], sig) {
		return nil, fmt.Errorf("wire: NewLocal: signer's signature does not verify under its PeerID %s", peer)
	}
	return &Local{
		id:      peer,
		static:  static,
		keypair: noise.DHKey{Private: static.Bytes(), Public: pub},
		payload: appendPayload(make([]byte, 0, payloadLen), peer, uint32(cfg.MaxMessageSize), sig),
		maxSize: cfg.MaxMessageSize,
		suite:   cfg.Suite,
	}, nil
}

// PeerID returns the identity the handshake presents.
func (l *Local) PeerID() trust.PeerID { return l.id }

// MaxMessageSize returns the largest message this side accepts, as
// announced to peers: what a Decoder for its Conns should allow.
func (l *Local) MaxMessageSize() int { return l.maxSize }

// Suite returns the cipher suite Client offers.
func (l *Local) Suite() Suite { return l.suite }

// staticKeyMessage returns what the identity payload signs: the domain
// separation prefix and the Noise static public key.
func staticKeyMessage(noiseStatic []byte) [len(staticKeyContext) + x25519KeyLen]byte {
	var m [len(staticKeyContext) + x25519KeyLen]byte
	copy(m[:], staticKeyContext)
	copy(m[len(staticKeyContext):], noiseStatic)
	return m
}

// appendPayload appends the identity payload of id with maxSize and sig
// (§3.2) to b.
func appendPayload(b []byte, id trust.PeerID, maxSize uint32, sig []byte) []byte {
	key := id.Bytes()
	b = append(b, payloadVersion)
	b = append(b, key[:]...)
	b = binary.BigEndian.AppendUint32(b, maxSize)
	return append(b, sig...)
}

// peerIdentity is what an identity payload tells about its sender.
type peerIdentity struct {
	id      trust.PeerID
	maxSize int // the largest message the sender accepts
}

// parsePayload checks an identity payload against the Noise static key that
// Noise authenticated in this handshake, in the order of §3.2, and returns
// what it says. Every failure wraps ErrBadPayload.
func parsePayload(p, noiseStatic []byte) (peerIdentity, error) {
	if len(p) != payloadLen {
		return peerIdentity{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadPayload, len(p), payloadLen)
	}
	if p[0] != payloadVersion {
		return peerIdentity{}, fmt.Errorf("%w: version %d, want %d", ErrBadPayload, p[0], payloadVersion)
	}
	const sizeAt, sigAt = 1 + ed25519.PublicKeySize, 1 + ed25519.PublicKeySize + maxSizeLen
	id, err := trust.PeerIDFromBytes(p[1:sizeAt])
	if err != nil {
		return peerIdentity{}, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	maxSize := binary.BigEndian.Uint32(p[sizeAt:sigAt])
	if maxSize < MinMaxMessageSize || maxSize > MaxMaxMessageSize {
		return peerIdentity{}, fmt.Errorf("%w: max_message_size %d is outside %d..%d", ErrBadPayload, maxSize, MinMaxMessageSize, MaxMaxMessageSize)
	}
	if len(noiseStatic) != x25519KeyLen {
		return peerIdentity{}, fmt.Errorf("%w: Noise static key is %d bytes", ErrBadPayload, len(noiseStatic))
	}
	msg := staticKeyMessage(noiseStatic)
	if !id.Verify(msg[:], p[sigAt:]) {
		return peerIdentity{}, fmt.Errorf("%w: signature does not bind the Noise static key to %s", ErrBadPayload, id)
	}
	return peerIdentity{id: id, maxSize: int(maxSize)}, nil
}

// Verdict is the responder's answer to an authenticated dialer, sent as the
// one-byte plaintext of the first record (§3.4).
type Verdict uint8

// The verdicts of §3.4.
const (
	// Accept lets the dialer in.
	Accept Verdict = 0x00
	// RefuseUntrusted refuses a dialer that is not on the trust list.
	RefuseUntrusted Verdict = 0x01
	// RefuseBusy refuses a dialer because the responder has too many
	// connections or handshakes.
	RefuseBusy Verdict = 0x02
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case RefuseUntrusted:
		return "refuse-untrusted"
	case RefuseBusy:
		return "refuse-busy"
	}
	return fmt.Sprintf("verdict(%#02x)", uint8(v))
}

// Client runs the dialer's side of the handshake over raw, which must be
// freshly connected. It blocks until the responder has authenticated as
// expect and accepted us, or the handshake failed. It never sends message 3,
// and so never reveals our identity, to a responder other than expect
// (*WrongPeerError).
//
// ctx bounds the whole handshake: its deadline (DefaultHandshakeTimeout from
// now if it has none) becomes raw's deadline, and cancelling it aborts the
// handshake. On success the deadline is cleared and
// the returned Conn owns raw; on any error raw is closed. A refusal returns
// ErrNotTrustedByPeer or ErrPeerBusy.
func Client(ctx context.Context, raw net.Conn, local *Local, expect trust.PeerID) (*Conn, error) {
	if expect.IsZero() {
		raw.Close()
		return nil, errors.New("wire: Client needs the PeerID to expect")
	}
	h, err := newHandshake(ctx, raw, local, true)
	if err != nil {
		return nil, err
	}
	c, err := h.client(expect)
	return h.finish(c, err)
}

// Server runs the responder's side of the handshake over raw, which must be
// freshly accepted. It blocks until the dialer is authenticated and the
// verdict is sent, or the handshake failed.
//
// authorize is called once, with the dialer's verified PeerID, after message
// 3; its verdict is sent to the dialer. For a refusal Server closes raw and
// returns ErrNotTrusted or ErrBusy; a verdict other than Accept,
// RefuseUntrusted and RefuseBusy is not sent and returns ErrBadVerdict.
//
// ctx bounds the whole handshake, authorize included, as for Client. On
// success the deadline is cleared and the returned Conn owns raw; on any
// error raw is closed.
func Server(ctx context.Context, raw net.Conn, local *Local, authorize func(trust.PeerID) Verdict) (*Conn, error) {
	if authorize == nil {
		raw.Close()
		return nil, errors.New("wire: Server needs an authorize function")
	}
	h, err := newHandshake(ctx, raw, local, false)
	if err != nil {
		return nil, err
	}
	c, err := h.server(authorize)
	return h.finish(c, err)
}

// handshake is the state of one Client or Server call.
type handshake struct {
	ctx       context.Context
	raw       net.Conn
	rd        *inbuf                // handed on to the Conn: it may hold the first records
	hs        *noise.HandshakeState // set by start, once the suite is known
	suite     Suite
	stop      func() bool // detaches ctx from raw
	cancel    context.CancelFunc
	initiator bool

	local *Local
	out   [preambleLen + handshakeLenSize + MaxHandshakeMessage]byte
	in    [MaxHandshakeMessage]byte
	plain [MaxHandshakeMessage]byte
}

func newHandshake(ctx context.Context, raw net.Conn, local *Local, initiator bool) (*handshake, error) {
	if local == nil {
		raw.Close()
		return nil, errors.New("wire: handshake needs a Local")
	}
	if err := ctx.Err(); err != nil {
		raw.Close()
		return nil, fmt.Errorf("starting handshake: %w", err)
	}
	cancel := context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel = context.WithTimeout(ctx, DefaultHandshakeTimeout)
	}
	d, _ := ctx.Deadline()
	if err := raw.SetDeadline(d); err != nil {
		cancel()
		raw.Close()
		return nil, fmt.Errorf("starting handshake: %w", err)
	}
	return &handshake{
		ctx:       ctx,
		raw:       raw,
		rd:        newInbuf(raw),
		stop:      context.AfterFunc(ctx, func() { raw.SetDeadline(aLongTimeAgo) }),
		cancel:    cancel,
		local:     local,
		initiator: initiator,
	}, nil
}

// start sets up the Noise handshake for suite, which names its cipher: a
// peer that runs another suite computes another handshake hash and fails to
// authenticate message 2 or 3 (§3.1).
func (h *handshake) start(suite Suite) error {
	dh := &x25519{static: h.local.static, staticRaw: h.local.keypair.Private}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   cipherSuite(dh, suite),
		Random:        h.local.rand,
		Pattern:       noise.HandshakeXX,
		Initiator:     h.initiator,
		Prologue:      []byte(noisePrologue),
		StaticKeypair: h.local.keypair,
	})
	if err != nil {
		return err
	}
	h.hs, h.suite = hs, suite
	return nil
}

// finish detaches ctx from raw. On success it clears the deadline; on error,
// or if ctx ended too late to interrupt the last step, it closes raw.
func (h *handshake) finish(c *Conn, err error) (*Conn, error) {
	defer h.cancel()
	if !h.stop() && err == nil {
		// The AfterFunc ran: raw's deadline is in the past.
		err = fmt.Errorf("finishing handshake: %w", h.ctx.Err())
	}
	if err == nil {
		if err = h.raw.SetDeadline(time.Time{}); err != nil {
			err = fmt.Errorf("finishing handshake: %w", err)
		}
	}
	if err != nil {
		h.raw.Close()
		return nil, err
	}
	return c, nil
}

// fail wraps err with the handshake step that failed. If the step failed
// because ctx ended, the error also matches ctx's error.
func (h *handshake) fail(step string, err error) error {
	ctxErr := h.ctx.Err()
	if ctxErr == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// raw's deadline is ctx's, and may fire a moment before ctx does.
		if d, ok := h.ctx.Deadline(); ok && !time.Now().Before(d) {
			ctxErr = context.DeadlineExceeded
		}
	}
	if ctxErr != nil {
		return fmt.Errorf("%s: %w (%w)", step, ctxErr, err)
	}
	return fmt.Errorf("%s: %w", step, err)
}

func (h *handshake) client(expect trust.PeerID) (*Conn, error) {
	// The dialer sends message 1 with its preamble, in one write, without
	// waiting for the responder's preamble (§2).
	if err := h.start(h.local.suite); err != nil {
		return nil, h.fail("starting handshake", err)
	}
	out := appendPreamble(h.out[:0], h.local.protocolVersion(), h.local.suite)
	out, _, _, err := h.writeMessage(out, nil)
	if err != nil {
		return nil, h.fail("writing handshake message 1", err)
	}
	if _, err := h.raw.Write(out); err != nil {
		return nil, h.fail("writing preamble and handshake message 1", err)
	}
	accepted, err := h.readPreamble()
	if err == nil {
		err = checkAccepted(accepted, h.suite)
	}
	if err != nil {
		return nil, h.fail("reading preamble", err)
	}

	msg2, err := h.readMessage(1, MaxHandshakeMessage)
	if err != nil {
		return nil, h.fail("reading handshake message 2", err)
	}
	payload, _, _, err := h.hs.ReadMessage(h.plain[:0], msg2)
	if err != nil {
		return nil, h.fail("reading handshake message 2", fmt.Errorf("%w: %w", ErrBadHandshake, err))
	}
	pi, err := parsePayload(payload, h.hs.PeerStatic())
	if err != nil {
		return nil, h.fail("checking responder's identity", err)
	}
	peer := pi.id
	if peer != expect {
		return nil, h.fail("checking responder's identity", &WrongPeerError{Expected: expect, Actual: peer})
	}

	out, send, recv, err := h.writeMessage(h.out[:0], h.local.payload)
	if err == nil && (send == nil || recv == nil) {
		err = errors.New("noise handshake did not complete")
	}
	if err != nil {
		return nil, h.fail("writing handshake message 3", err)
	}
	if _, err := h.raw.Write(out); err != nil {
		return nil, h.fail("writing handshake message 3", err)
	}

	c := newConn(h.raw, h.rd, h.suite, send.UnsafeKey(), recv.UnsafeKey(), pi)
	v, err := c.readVerdict()
	if err != nil {
		return nil, h.fail("reading verdict", err)
	}
	switch v {
	case Accept:
		return c, nil
	case RefuseUntrusted:
		return nil, fmt.Errorf("%w (peer %s)", ErrNotTrustedByPeer, peer)
	case RefuseBusy:
		return nil, fmt.Errorf("%w (peer %s)", ErrPeerBusy, peer)
	}
	return nil, h.fail("reading verdict", fmt.Errorf("%w: %#02x", ErrBadVerdict, uint8(v)))
}

func (h *handshake) server(authorize func(trust.PeerID) Verdict) (*Conn, error) {
	if _, err := h.raw.Write(appendPreamble(h.out[:0], h.local.protocolVersion(), acceptedSuites)); err != nil {
		return nil, h.fail("writing preamble", err)
	}
	offer, err := h.readPreamble()
	if err != nil {
		return nil, h.fail("reading preamble", err)
	}
	suite, err := parseOffer(offer)
	if err != nil {
		return nil, h.fail("reading preamble", err)
	}
	if err := h.start(suite); err != nil {
		return nil, h.fail("starting handshake", err)
	}

	msg1, err := h.readMessage(msg1Len, msg1Len)
	if err != nil {
		return nil, h.fail("reading handshake message 1", err)
	}
	payload, _, _, err := h.hs.ReadMessage(h.plain[:0], msg1)
	if err == nil && len(payload) != 0 {
		err = errors.New("non-empty payload")
	}
	if err != nil {
		return nil, h.fail("reading handshake message 1", fmt.Errorf("%w: %w", ErrBadHandshake, err))
	}

	out, _, _, err := h.writeMessage(h.out[:0], h.local.payload)
	if err != nil {
		return nil, h.fail("writing handshake message 2", err)
	}
	if _, err := h.raw.Write(out); err != nil {
		return nil, h.fail("writing handshake message 2", err)
	}

	msg3, err := h.readMessage(1, MaxHandshakeMessage)
	if err != nil {
		return nil, h.fail("reading handshake message 3", err)
	}
	payload, recv, send, err := h.hs.ReadMessage(h.plain[:0], msg3)
	if err == nil && (send == nil || recv == nil) {
		err = errors.New("noise handshake did not complete")
	}
	if err != nil {
		return nil, h.fail("reading handshake message 3", fmt.Errorf("%w: %w", ErrBadHandshake, err))
	}
	pi, err := parsePayload(payload, h.hs.PeerStatic())
	if err != nil {
		return nil, h.fail("checking dialer's identity", err)
	}
	peer := pi.id

	v := authorize(peer)
	switch v {
	case Accept, RefuseUntrusted, RefuseBusy:
	default:
		return nil, fmt.Errorf("authorizing %s: %w: authorize returned %v", peer, ErrBadVerdict, v)
	}
	c := newConn(h.raw, h.rd, h.suite, send.UnsafeKey(), recv.UnsafeKey(), pi)
	if _, err := c.Write([]byte{byte(v)}); err != nil {
		return nil, h.fail("writing verdict", err)
	}
	switch v {
	case RefuseUntrusted:
		return nil, fmt.Errorf("%w (peer %s)", ErrNotTrusted, peer)
	case RefuseBusy:
		return nil, fmt.Errorf("%w (peer %s)", ErrBusy, peer)
	}
	return c, nil
}

// writeMessage appends the next Noise handshake message, with its length
// prefix (§3.3), to out. The cipher states are set when the message
// completes the handshake.
func (h *handshake) writeMessage(out, payload []byte) (_ []byte, cs1, cs2 *noise.CipherState, err error) {
	start := len(out)
	out = append(out, 0, 0)
	out, cs1, cs2, err = h.hs.WriteMessage(out, payload)
	if err != nil {
		return nil, nil, nil, err
	}
	binary.BigEndian.PutUint16(out[start:], uint16(len(out)-start-handshakeLenSize))
	return out, cs1, cs2, nil
}

// readPreamble reads the peer's preamble, checks its magic and version, and
// returns its suites byte (§2). It reads the suites byte only once the
// version matches: a peer of another version may not send one.
func (h *handshake) readPreamble() (byte, error) {
	var p [preambleLen]byte
	if _, err := io.ReadFull(h.rd, p[:preambleHeadLen]); err != nil {
		return 0, err
	}
	if err := parsePreambleHead(p[:preambleHeadLen], h.local.protocolVersion()); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(h.rd, p[preambleHeadLen:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	return p[preambleHeadLen], nil
}

// readMessage reads one length-prefixed handshake message of minLen to maxLen
// bytes (§3.3). The length is checked before the body is read. The result is
// valid until the next call.
func (h *handshake) readMessage(minLen, maxLen int) ([]byte, error) {
	var hdr [handshakeLenSize]byte
	if _, err := io.ReadFull(h.rd, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > maxLen {
		return nil, fmt.Errorf("%w: length %d, limit %d", ErrHandshakeTooLarge, n, maxLen)
	}
	if n < minLen {
		return nil, fmt.Errorf("%w: length %d, need at least %d", ErrBadHandshake, n, minLen)
	}
	msg := h.in[:n]
	if _, err := io.ReadFull(h.rd, msg); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return msg, nil
}
