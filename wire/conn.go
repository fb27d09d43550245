package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peernet/peernet/trust"
	"golang.org/x/crypto/chacha20poly1305"
)

// Record layout (§4):
//
//	offset size field
//	0      2    length n of the ciphertext (16 ≤ n ≤ MaxRecordSize)
//	2      n    AEAD ciphertext of up to MaxRecordPlaintext bytes + 16-byte tag
//
// The AEAD is the handshake's suite. The nonce is implicit: a per-direction
// counter from 0, encoded as Noise does for that suite (4 zero bytes, then
// the counter, little-endian for ChaChaPoly, big-endian for AESGCM).
const (
	// MaxRecordSize is the most ciphertext bytes one record carries: the
	// Noise transport message limit.
	MaxRecordSize = 65535
	// MaxRecordPlaintext is the most plaintext bytes one record carries.
	MaxRecordPlaintext = MaxRecordSize - recordTagSize

	recordHeaderLen = 2
	recordTagSize   = chacha20poly1305.Overhead // AES-GCM's tag is 16 bytes too

	// maxRecordNonce is the last nonce a record may use: Noise reserves
	// 2^64-1 (for rekeying), so a direction that would reach it is exhausted.
	maxRecordNonce = math.MaxUint64 - 1

	// recordsPerWrite bounds how many full records one write to the network
	// carries, and so the size of a large output buffer (about 256 KiB).
	recordsPerWrite = 4
	// maxRecordsPerWrite bounds how many records, full or not, one write
	// carries: WriteBuffers makes a short record of every short buffer.
	maxRecordsPerWrite = 64

	// smallWriteSize is the output buffer a Conn keeps between writes; a
	// larger write borrows a buffer from a pool for its duration, so an
	// idle Conn holds little.
	smallWriteSize = 4096 + 256
	// A large buffer holds a full batch plus the rest of a record that a
	// timed-out write had begun.
	largeWriteSize = (recordsPerWrite+1)*(recordHeaderLen+MaxRecordSize) + maxRecordsPerWrite*(recordHeaderLen+recordTagSize)
)

var largeWritePool = sync.Pool{New: func() any { b := make([]byte, largeWriteSize); return &b }}

// Conn is an established PeerNet connection: a net.Conn whose Read and Write
// carry the plaintext byte stream of §4 over Noise transport records. Client
// and Server return it; the zero value is not usable.
//
// A Conn is safe for concurrent use: Read and Write may run at the same time
// (each is serialised with itself), and Close, the deadline setters and the
// address getters may be called from any goroutine at any time.
//
// A record that fails to authenticate, a malformed record, or nonce
// exhaustion breaks the Conn for good: it closes the underlying connection,
// and every later Read and Write returns the same error (ErrRecordAuth,
// ErrBadRecord or ErrNonceExhausted). Timeouts from the deadlines are not
// fatal: a Read or Write that times out may be retried. Any other write error
// sticks: later Writes return it.
type Conn struct {
	raw     net.Conn
	remote  trust.PeerID
	suite   Suite
	peerMax int // the largest message the peer accepts

	rmu      sync.Mutex // serialises Read
	in       *inbuf     // records are decrypted in place in its buffer
	recv     recordAEAD
	rnonce   uint64
	leftover []byte // plaintext not yet returned, decrypted in place in in's buffer
	consumed int    // bytes to discard from in once leftover is returned

	wmu  sync.Mutex // serialises Write
	send recordAEAD
	// wnonce is the nonce of the next record to encrypt.
	wnonce uint64
	// wlens are the plaintext lengths of the records of the write in
	// progress.
	wlens [maxRecordsPerWrite]uint16
	// wbuf holds the records of one write; it is reused, so steady-state
	// writes do not allocate. Its first wpending bytes are the rest of a
	// record that a timed-out write had begun: they go out first.
	wbuf     []byte
	wlarge   *[]byte // wbuf's pooled array while it is a large one
	wpending int
	werr     error // sticky non-timeout write error

	closed    atomic.Bool
	broken    atomic.Pointer[error]
	closeOnce sync.Once
	closeErr  error
}

var _ net.Conn = (*Conn)(nil)

// newConn wraps raw, read through in, after a completed handshake with
// suite. sendKey and recvKey are the Noise Split() keys of this side; peer is
// what the peer's identity payload said.
func newConn(raw net.Conn, in *inbuf, suite Suite, sendKey, recvKey [32]byte, peer peerIdentity) *Conn {
	return &Conn{
		raw:     raw,
		remote:  peer.id,
		suite:   suite,
		peerMax: peer.maxSize,
		in:      in,
		recv:    newRecordAEAD(suite, recvKey),
		send:    newRecordAEAD(suite, sendKey),
	}
}

// RemotePeer returns the peer's PeerID, authenticated by the handshake.
func (c *Conn) RemotePeer() trust.PeerID { return c.remote }

// Suite returns the cipher suite the handshake settled on: the one the
// dialer offered (§2).
func (c *Conn) Suite() Suite { return c.suite }

// PeerMaxMessageSize returns the largest message L the peer accepts, from
// its identity payload (§3.2): encode what is sent on c with this as the
// maximum, so that a message the peer would refuse fails locally.
func (c *Conn) PeerMaxMessageSize() int { return c.peerMax }

// LocalAddr returns the underlying connection's local address.
func (c *Conn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr returns the underlying connection's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline sets the read and write deadlines of the underlying connection.
func (c *Conn) SetDeadline(t time.Time) error { return c.raw.SetDeadline(t) }

// SetReadDeadline sets the underlying connection's read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.raw.SetReadDeadline(t) }

// SetWriteDeadline sets the underlying connection's write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

// Close closes the underlying connection, unblocking any Read or Write. It
// is idempotent: later calls return what the first returned. Plaintext not yet
// read, and the rest of a record from a timed-out Write, are dropped.
func (c *Conn) Close() error {
	c.closed.Store(true)
	return c.closeRaw()
}

func (c *Conn) closeRaw() error {
	c.closeOnce.Do(func() { c.closeErr = c.raw.Close() })
	return c.closeErr
}

// fail breaks the Conn with err, unless it is already broken, closes the
// underlying connection and returns the error that broke it.
func (c *Conn) fail(err error) error {
	if c.broken.CompareAndSwap(nil, &err) {
		c.closeRaw()
	}
	return *c.broken.Load()
}

// usable returns why the Conn can no longer be used, if it cannot.
func (c *Conn) usable() error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	if err := c.broken.Load(); err != nil {
		return *err
	}
	return nil
}

// Read reads plaintext into p. It blocks until at least one byte is
// available, the read deadline passes, or the Conn fails. Record boundaries
// are invisible: one Read may return part of a record or several records.
// Errors from the underlying connection (io.EOF at a record boundary,
// timeouts) are returned as they are; an end of stream inside a record is
// io.ErrUnexpectedEOF.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if err := c.usable(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	for n == 0 && len(c.leftover) == 0 { // empty records carry nothing: skip them
		var err error
		if n, err = c.readRecord(p); err != nil {
			return 0, err
		}
	}
	if n == 0 {
		n = c.takeLeftover(p)
	}
	// Records already buffered in full whose plaintext fits go straight into
	// p, so a large p drains many small records in one call.
	for n < len(p) && len(c.leftover) == 0 && c.fitsBuffered(len(p)-n) {
		m, err := c.readRecord(p[n:])
		if err != nil {
			break // sticky, or retried: reported by the next Read
		}
		n += m
	}
	return n, nil
}

// readRecord reads and decrypts the next record. If its plaintext fits in
// dst it is decrypted into dst and its length returned; otherwise it is
// decrypted in place and left in c.leftover. A timeout leaves the record in
// c.in, to be read again.
func (c *Conn) readRecord(dst []byte) (int, error) {
	hdr, err := c.in.peek(recordHeaderLen)
	if err != nil {
		return 0, endOfStream(err, len(hdr))
	}
	size := int(binary.BigEndian.Uint16(hdr))
	if size < recordTagSize {
		return 0, c.fail(fmt.Errorf("%w: length %d is below the %d-byte tag", ErrBadRecord, size, recordTagSize))
	}
	rec, err := c.in.peek(recordHeaderLen + size)
	if err != nil {
		return 0, endOfStream(err, len(rec))
	}
	if c.rnonce > maxRecordNonce {
		return 0, c.fail(ErrNonceExhausted)
	}
	ct := rec[recordHeaderLen:]
	inPlace := len(dst) < size-recordTagSize
	if inPlace {
		dst = ct
	}
	pt, err := c.recv.aead.Open(dst[:0], c.recv.setNonce(c.rnonce), ct, nil)
	if err != nil {
		return 0, c.fail(fmt.Errorf("%w (record %d)", ErrRecordAuth, c.rnonce))
	}
	c.rnonce++
	if inPlace {
		c.leftover, c.consumed = pt, recordHeaderLen+size
		return 0, nil
	}
	c.in.discard(recordHeaderLen + size)
	return len(pt), nil
}

// fitsBuffered reports whether c.in holds a whole record whose plaintext fits
// in room bytes, so reading it cannot block.
func (c *Conn) fitsBuffered(room int) bool {
	if c.in.buffered() < recordHeaderLen {
		return false
	}
	hdr, _ := c.in.peek(recordHeaderLen)
	size := int(binary.BigEndian.Uint16(hdr))
	return c.in.buffered() >= recordHeaderLen+size && size-recordTagSize <= room
}

// takeLeftover copies leftover plaintext into p and releases the record's
// bytes in c.in once all of it is taken.
func (c *Conn) takeLeftover(p []byte) int {
	n := copy(p, c.leftover)
	c.leftover = c.leftover[n:]
	if len(c.leftover) == 0 {
		c.in.discard(c.consumed)
		c.leftover, c.consumed = nil, 0
	}
	return n
}

// endOfStream turns an io.EOF after part of a record into
// io.ErrUnexpectedEOF.
func endOfStream(err error, got int) error {
	if err == io.EOF && got > 0 {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readVerdict reads the responder's first record, which must hold exactly
// one byte (§3.4).
func (c *Conn) readVerdict() (Verdict, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if _, err := c.readRecord(nil); err != nil {
		return 0, err
	}
	if len(c.leftover) != 1 {
		return 0, fmt.Errorf("%w: %d-byte record", ErrBadVerdict, len(c.leftover))
	}
	var v [1]byte
	c.takeLeftover(v[:])
	return Verdict(v[0]), nil
}

// Write encrypts p into records of at most MaxRecordPlaintext bytes and
// writes them with one write to the underlying connection (one per
// recordsPerWrite records for a larger p). It blocks until all of p is
// written, the write deadline passes, or the Conn fails. The Conn does not
// keep p.
//
// n counts the bytes of p that are committed to the stream. After a timeout
// the last committed record may be only partly written; its rest goes out at
// the start of the next Write, and bytes not committed may be written again.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	one := [1][]byte{p}
	return c.writeFrom(&gather{bufs: one[:]})
}

// WriteBuffers writes the concatenation of bufs as Write would, except that
// every buffer starts a record of its own: no record spans two buffers, so
// writing them is exactly like calling Write on each in turn (the same
// records), with the writes to the network batched as for one Write. Each
// record is sealed straight from the caller's buffer, so a large message
// body can follow its header without being copied next to it; and because
// the body's records hold nothing else, a receiver that reads the body into
// a buffer of its own decrypts them straight into it. WriteBuffers does not
// keep bufs or modify them; n counts the bytes committed, as for Write.
func (c *Conn) WriteBuffers(bufs [][]byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeFrom(&gather{bufs: bufs})
}

// writeFrom writes what g holds; c.wmu is held.
func (c *Conn) writeFrom(g *gather) (int, error) {
	if err := c.usable(); err != nil {
		return 0, err
	}
	if c.werr != nil {
		return 0, c.werr
	}
	written := 0
	for g.skipEmpty(); len(g.bufs) > 0; g.skipEmpty() {
		n, err := c.writeRecords(g)
		written += n
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// gather reads a sequence of buffers front to back.
type gather struct {
	bufs [][]byte
	off  int // bytes of bufs[0] already read
}

// take returns the next n bytes, which must lie within the current buffer.
func (g *gather) take(n int) []byte {
	g.skipEmpty()
	b := g.bufs[0][g.off : g.off+n]
	g.off += n
	return b
}

func (g *gather) skipEmpty() {
	for len(g.bufs) > 0 && g.off == len(g.bufs[0]) {
		g.bufs, g.off = g.bufs[1:], 0
	}
}

// writeRecords seals g's next records, after any pending bytes, and writes
// them all with one call: at most recordsPerWrite full records' worth of
// plaintext in at most maxRecordsPerWrite records. A record holds at most
// MaxRecordPlaintext bytes of one buffer.
func (c *Conn) writeRecords(g *gather) (int, error) {
	records, plain := 0, 0
	for i, off := 0, g.off; i < len(g.bufs) && records < maxRecordsPerWrite; {
		rest := len(g.bufs[i]) - off
		if rest == 0 {
			i, off = i+1, 0
			continue
		}
		l := min(rest, MaxRecordPlaintext)
		if plain+l > recordsPerWrite*MaxRecordPlaintext {
			break
		}
		c.wlens[records] = uint16(l)
		records, plain, off = records+1, plain+l, off+l
	}
	if need := c.wpending + plain + records*(recordHeaderLen+recordTagSize); cap(c.wbuf) < need {
		var b []byte
		if need <= smallWriteSize {
			b = make([]byte, c.wpending, smallWriteSize)
		} else {
			c.wlarge = largeWritePool.Get().(*[]byte)
			b = (*c.wlarge)[:c.wpending]
		}
		copy(b, c.wbuf[:c.wpending])
		c.wbuf = b
	}
	buf := c.wbuf[:c.wpending]
	first := c.wnonce
	for _, l := range c.wlens[:records] {
		if c.wnonce > maxRecordNonce {
			return 0, c.fail(ErrNonceExhausted)
		}
		buf = binary.BigEndian.AppendUint16(buf, l+recordTagSize)
		buf = c.send.aead.Seal(buf, c.send.setNonce(c.wnonce), g.take(int(l)), nil)
		c.wnonce++
	}
	m, err := c.raw.Write(buf)
	if err == nil {
		c.wpending = 0
		if c.wlarge != nil {
			// Only a burst needs the large buffer; an idle Conn keeps none.
			largeWritePool.Put(c.wlarge)
			c.wlarge, c.wbuf = nil, nil
		}
		return plain, nil
	}
	return c.writeFailed(buf, m, records, first, err)
}

// writeFailed accounts for a write of buf, holding the given number of
// records (their lengths in c.wlens), that stopped after m bytes with
// err: records begun are committed, and the rest of a partly written one is
// kept as pending; records not begun are dropped and their nonces reused,
// which is safe because their ciphertext never left the Conn.
func (c *Conn) writeFailed(buf []byte, m, records int, first uint64, err error) (int, error) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.werr = err
	}
	keep := c.wbuf[:cap(c.wbuf)] // buf shares it; copy handles the overlap
	if m < c.wpending {
		c.wpending = copy(keep, buf[m:c.wpending])
		c.wnonce = first
		return 0, err
	}
	off, committed, nonce := c.wpending, 0, first
	c.wpending = 0
	for _, l16 := range c.wlens[:records] {
		if m <= off {
			break
		}
		l := int(l16)
		end := off + recordHeaderLen + l + recordTagSize
		committed += l
		nonce++
		if m < end {
			c.wpending = copy(keep, buf[m:end])
			break
		}
		off = end
	}
	c.wnonce = nonce
	return committed, err
}
