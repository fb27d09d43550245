package wire

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// An idle Conn holds no large buffer: a burst borrows one on each side and
// gives it back once everything is written and read.
func TestConnReleasesLargeBuffersWhenIdle(t *testing.T) {
	ra, rb := net.Pipe()
	a, b := fixedConn(ra, true), fixedConn(rb, false)
	defer a.Close()
	defer b.Close()

	for _, size := range []int{10, smallReadSize + 1, 3*MaxRecordPlaintext + 17, 200} {
		msg := bytes.Repeat([]byte{byte(size)}, size)
		errc := make(chan error, 1)
		go func() {
			_, err := a.Write(msg)
			errc <- err
		}()
		got := make([]byte, size)
		if _, err := io.ReadFull(b, got); err != nil {
			t.Fatalf("size %d: reading: %v", size, err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("size %d: writing: %v", size, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("size %d: read back different bytes", size)
		}
		if b.in.large != nil || b.in.buffered() != 0 {
			t.Errorf("size %d: reader holds a large buffer (%d bytes buffered) after consuming everything", size, b.in.buffered())
		}
		if a.wlarge != nil || cap(a.wbuf) > smallWriteSize {
			t.Errorf("size %d: writer keeps a %d-byte buffer after the write", size, cap(a.wbuf))
		}
	}
}

// inbuf keeps partial records across reads and switches buffers without
// losing bytes.
func TestInbufPeekAcrossBuffers(t *testing.T) {
	data := make([]byte, 3*largeReadSize)
	for i := range data {
		data[i] = byte(i * 7)
	}
	// A reader that returns at most 1000 bytes at a time.
	in := newInbuf(&chunked{r: bytes.NewReader(data), n: 1000})
	var out []byte
	for _, n := range []int{5, smallReadSize, 1, largeReadSize, 2, largeReadSize - 3} {
		got, err := in.peek(n)
		if err != nil {
			t.Fatalf("peek(%d): %v", n, err)
		}
		out = append(out, got...)
		in.discard(n)
	}
	if !bytes.Equal(out, data[:len(out)]) {
		t.Fatal("peeked bytes differ from the stream")
	}
	rest := len(data) - len(out)
	if got, err := in.peek(rest + 1); err != io.EOF || len(got) != rest {
		t.Fatalf("peek past the end: %d bytes, %v; want %d, EOF", len(got), err, rest)
	}
}

type chunked struct {
	r io.Reader
	n int
}

func (c *chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }
