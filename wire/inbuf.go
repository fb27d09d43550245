package wire

import (
	"io"
	"sync"
)

// Read buffering. A connection's reader spends most of its life blocked on
// an idle connection, so what it holds while blocked is what an idle
// connection costs. inbuf therefore reads into a small buffer of its own when
// it is empty, and borrows a buffer big enough for a whole record from a
// pool only while a record larger than that is in flight, returning it as
// soon as everything buffered has been consumed. Bursts of records still
// cost one read from the network for many records.
const (
	// smallReadSize holds a record carrying a 4 KiB message, so calls of a
	// few KiB never borrow the large buffer.
	smallReadSize = 4096 + 256
	// largeReadSize holds the largest record with its header.
	largeReadSize = recordHeaderLen + MaxRecordSize
	// largeBufSize is the borrowed buffer: several large records, so that
	// a burst of them costs about one read from the network each, not two
	// or three (the rest of one record, then the start of the next).
	largeBufSize = 4 * largeReadSize
)

var largeReadPool = sync.Pool{New: func() any { b := make([]byte, largeBufSize); return &b }}

// inbuf buffers reads from r. Its unread bytes are buf[r:w]; buf is either
// small or a borrowed large buffer. Not safe for concurrent use.
type inbuf struct {
	src   io.Reader
	buf   []byte
	large *[]byte // the borrowed buffer when buf is large, else nil
	r, w  int
	small [smallReadSize]byte
}

func newInbuf(src io.Reader) *inbuf {
	b := &inbuf{src: src}
	b.buf = b.small[:]
	return b
}

// buffered returns how many unread bytes are held.
func (b *inbuf) buffered() int { return b.w - b.r }

// peek returns the next n bytes (n ≤ largeReadSize) without consuming them,
// reading from the source as needed. With an error it returns what it has.
// The result is valid until the next call of any method.
func (b *inbuf) peek(n int) ([]byte, error) {
	for b.w-b.r < n {
		if b.r+n > len(b.buf) {
			b.makeRoom(n)
		}
		k, err := b.src.Read(b.buf[b.w:])
		b.w += k
		if err != nil && b.w-b.r < n {
			return b.buf[b.r:b.w], err
		}
	}
	return b.buf[b.r : b.r+n], nil
}

// makeRoom makes buf hold n bytes from r on: it moves the unread bytes to
// the front, switching to a large buffer if the small one is too small.
func (b *inbuf) makeRoom(n int) {
	dst := b.buf
	if n > len(b.buf) && b.large == nil {
		b.large = largeReadPool.Get().(*[]byte)
		dst = *b.large
	}
	b.w = copy(dst, b.buf[b.r:b.w])
	b.r, b.buf = 0, dst
}

// discard consumes n buffered bytes. Once nothing is left it returns a
// borrowed buffer to the pool.
func (b *inbuf) discard(n int) {
	b.r += n
	if b.r < b.w {
		return
	}
	b.r, b.w = 0, 0
	if b.large != nil {
		largeReadPool.Put(b.large)
		b.large, b.buf = nil, b.small[:]
	}
}

// Read implements io.Reader over the buffered stream, for the handshake.
func (b *inbuf) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	got, err := b.peek(1)
	if len(got) == 0 {
		return 0, err
	}
	n := copy(p, b.buf[b.r:b.w])
	b.discard(n)
	return n, nil
}
