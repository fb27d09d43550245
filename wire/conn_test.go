package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/peernet/peernet/testing/poll"
)

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{0: byte(seed), 1: byte(seed >> 8)})
	r.Read(b)
	return b
}

// limitedReader returns at most max bytes per Read.
type limitedReader struct {
	r   io.Reader
	max int
}

func (l limitedReader) Read(p []byte) (int, error) {
	return l.r.Read(p[:min(len(p), l.max)])
}

func TestConnRoundTrip(t *testing.T) {
	client, server := connPair(t)
	sizes := []int{1, 100, MaxRecordPlaintext - 1, MaxRecordPlaintext, MaxRecordPlaintext + 1,
		recordsPerWrite*MaxRecordPlaintext + 5, 1 << 20}
	readSizes := []int{7, 4096, MaxRecordPlaintext, 1 << 20}
	for i, size := range sizes {
		for _, rs := range readSizes {
			t.Run(fmt.Sprintf("write %d read %d", size, rs), func(t *testing.T) {
				want := randomBytes(size, uint64(i))
				errc := make(chan error, 1)
				go func() {
					_, err := client.Write(want)
					errc <- err
				}()
				got := make([]byte, size)
				if _, err := io.ReadFull(limitedReader{server, rs}, got); err != nil {
					t.Fatalf("reading: %v", err)
				}
				if err := <-errc; err != nil {
					t.Fatalf("writing: %v", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatal("data differs")
				}
			})
		}
	}
}

// countConn is a net.Conn that discards writes, counting them, and reads
// from a fixed input.
type countConn struct {
	scriptConn
	writes int
	sizes  []int
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes++
	c.sizes = append(c.sizes, len(p))
	return c.scriptConn.Write(p)
}

func TestConnWriteBatching(t *testing.T) {
	tests := []struct {
		size, records, writes int
	}{
		{1, 1, 1},
		{MaxRecordPlaintext, 1, 1},
		{MaxRecordPlaintext + 1, 2, 1},
		{recordsPerWrite * MaxRecordPlaintext, recordsPerWrite, 1},
		{recordsPerWrite*MaxRecordPlaintext + 1, recordsPerWrite + 1, 2},
		{1 << 20, 17, 5},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.size), func(t *testing.T) {
			raw := &countConn{}
			c := fixedConn(raw, true)
			data := randomBytes(tt.size, 1)
			if n, err := c.Write(data); n != tt.size || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			if raw.writes != tt.writes {
				t.Errorf("%d writes to the network, want %d", raw.writes, tt.writes)
			}
			// Parse the records independently.
			stream := raw.written.Bytes()
			var records int
			for len(stream) > 0 {
				n := int(binary.BigEndian.Uint16(stream))
				if n > MaxRecordSize || n < recordTagSize || len(stream) < 2+n {
					t.Fatalf("record %d: bad length %d", records, n)
				}
				stream = stream[2+n:]
				records++
			}
			if records != tt.records {
				t.Errorf("%d records, want %d", records, tt.records)
			}
			in := &scriptConn{input: *bytes.NewReader(raw.written.Bytes())}
			got, err := io.ReadAll(fixedConn(in, false))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("reading back: %d bytes, %v", len(got), err)
			}
		})
	}
}

func TestConnAllocations(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts differ under coverage and -race")
	}
	data := make([]byte, 16<<10)
	w := fixedConn(&countConn{}, true)
	w.Write(data) // grow the output buffer once
	if n := testing.AllocsPerRun(100, func() {
		w.raw.(*countConn).written.Reset()
		w.raw.(*countConn).sizes = w.raw.(*countConn).sizes[:0]
		w.Write(data)
	}); n != 0 {
		t.Errorf("Write allocates %v times per call, want 0", n)
	}

	const runs = 200
	var stream []byte
	for i := range runs + 1 {
		stream = append(stream, sealRecord(t, testKeyAB, uint64(i), data[:1000])...)
	}
	r := fixedConn(&scriptConn{input: *bytes.NewReader(stream)}, false)
	buf := make([]byte, 600) // smaller than a record: exercises the in-place path
	if n := testing.AllocsPerRun(runs, func() {
		if _, err := io.ReadFull(r, buf[:500]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, buf[:500]); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Read allocates %v times per record, want 0", n)
	}
}

func TestConnReadCoalesces(t *testing.T) {
	var stream []byte
	var want []byte
	for i := range 10 {
		pt := bytes.Repeat([]byte{byte('a' + i)}, 10)
		want = append(want, pt...)
		stream = append(stream, sealRecord(t, testKeyAB, uint64(i), pt)...)
	}
	// Empty records in between carry nothing and are skipped.
	stream = append(stream, sealRecord(t, testKeyAB, 10, nil)...)
	stream = append(stream, sealRecord(t, testKeyAB, 11, []byte("z"))...)
	want = append(want, 'z')
	c := fixedConn(&scriptConn{input: *bytes.NewReader(stream)}, false)
	buf := make([]byte, 1000)
	n, err := c.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], want) {
		t.Errorf("one Read over buffered records = %q, %v; want %q", buf[:n], err, want)
	}
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("Read at the end = %d, %v; want io.EOF", n, err)
	}
}

func TestConnRecordAttacks(t *testing.T) {
	checkLeaks(t)
	record := func(b []byte) []byte { return b } // one Write = one record here
	tests := []struct {
		name string
		// mutate rewrites each of the dialer's writes after the handshake;
		// it returns what goes on the wire instead.
		mutate   func() func([]byte) []byte
		first    string // what the responder reads before the error, if anything
		want     error
		breaking bool // the error breaks the Conn for good
	}{
		{"flipped ciphertext bit", func() func([]byte) []byte {
			return func(b []byte) []byte { b[2] ^= 0x01; return b }
		}, "", ErrRecordAuth, true},
		{"flipped tag bit", func() func([]byte) []byte {
			return func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }
		}, "", ErrRecordAuth, true},
		{"truncated record", func() func([]byte) []byte {
			return func(b []byte) []byte {
				binary.BigEndian.PutUint16(b, binary.BigEndian.Uint16(b)-1)
				return b[:len(b)-1]
			}
		}, "", ErrRecordAuth, true},
		{"replayed", func() func([]byte) []byte {
			return func(b []byte) []byte { return append(record(b), b...) }
		}, "one", ErrRecordAuth, true},
		{"reordered", func() func([]byte) []byte {
			var held []byte
			return func(b []byte) []byte {
				if held == nil {
					held = b
					return nil
				}
				return append(b, held...)
			}
		}, "", ErrRecordAuth, true},
		{"dropped", func() func([]byte) []byte {
			dropped := false
			return func(b []byte) []byte {
				if !dropped {
					dropped = true
					return nil
				}
				return b
			}
		}, "", ErrRecordAuth, true},
		{"zero length", func() func([]byte) []byte {
			return func(b []byte) []byte { return []byte{0, 0} }
		}, "", ErrBadRecord, true},
		{"length below the tag", func() func([]byte) []byte {
			return func(b []byte) []byte { return append([]byte{0, 15}, b[2:17]...) }
		}, "", ErrBadRecord, true},
		{"record from another connection", func() func([]byte) []byte {
			return func(b []byte) []byte { return sealRecord(t, testKeyAB, 0, []byte("one")) }
		}, "", ErrRecordAuth, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
			d, r := tcpPair(t)
			spy := &spyConn{Conn: d}
			cr, sr := runHandshake(t, testContext(t, 10*time.Second), spy, r, a, b, b.PeerID(), acceptAll)
			if cr.err != nil || sr.err != nil {
				t.Fatalf("handshake: client: %v; server: %v", cr.err, sr.err)
			}
			client, server := cr.conn, sr.conn
			spy.setMutate(tt.mutate())
			for _, msg := range []string{"one", "two"} {
				if _, err := client.Write([]byte(msg)); err != nil {
					t.Fatalf("writing %q: %v", msg, err)
				}
			}
			buf := make([]byte, 100)
			if tt.first != "" {
				n, err := server.Read(buf[:len(tt.first)])
				if err != nil || string(buf[:n]) != tt.first {
					t.Fatalf("first Read = %q, %v; want %q", buf[:n], err, tt.first)
				}
			}
			_, err := server.Read(buf)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Read error = %v, want %v", err, tt.want)
			}
			if !tt.breaking {
				return
			}
			if _, again := server.Read(buf); again != err {
				t.Errorf("Read after the failure = %v, want the same %v", again, err)
			}
			if _, werr := server.Write([]byte("x")); werr != err {
				t.Errorf("Write after the failure = %v, want the same %v", werr, err)
			}
			// The responder closed the connection: the dialer sees its end.
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, rerr := client.Read(buf); rerr != io.EOF && !isReset(rerr) {
				t.Errorf("dialer's Read = %v, want EOF (connection closed)", rerr)
			}
		})
	}
}

func TestConnCutOff(t *testing.T) {
	rec := sealRecord(t, testKeyAB, 0, []byte("hello"))
	for _, cut := range []int{1, 2, 10, len(rec) - 1} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			c := fixedConn(&scriptConn{input: *bytes.NewReader(rec[:cut])}, false)
			if _, err := c.Read(make([]byte, 10)); err != io.ErrUnexpectedEOF {
				t.Errorf("Read = %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
}

func TestConnNonceExhausted(t *testing.T) {
	t.Run("sender", func(t *testing.T) {
		raw := &countConn{}
		c := fixedConn(raw, true)
		c.wnonce = maxRecordNonce
		if _, err := c.Write([]byte("last")); err != nil {
			t.Fatalf("Write with the last nonce: %v", err)
		}
		if _, err := c.Write([]byte("one too many")); !errors.Is(err, ErrNonceExhausted) {
			t.Fatalf("Write past the last nonce = %v, want ErrNonceExhausted", err)
		}
		if !raw.closed {
			t.Error("raw conn not closed")
		}
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, ErrNonceExhausted) {
			t.Errorf("Read afterwards = %v, want ErrNonceExhausted", err)
		}
		// The peer accepts the last record.
		r := fixedConn(&scriptConn{input: *bytes.NewReader(raw.written.Bytes())}, false)
		r.rnonce = maxRecordNonce
		if got, err := io.ReadAll(r); string(got) != "last" || err != nil {
			t.Errorf("peer read %q, %v; want %q", got, err, "last")
		}
	})
	t.Run("receiver", func(t *testing.T) {
		stream := append(sealRecord(t, testKeyAB, maxRecordNonce, []byte("last")),
			sealRecord(t, testKeyAB, maxRecordNonce+1, []byte("reserved"))...)
		raw := &scriptConn{input: *bytes.NewReader(stream)}
		c := fixedConn(raw, false)
		c.rnonce = maxRecordNonce
		buf := make([]byte, 4)
		if n, err := c.Read(buf); string(buf[:n]) != "last" || err != nil {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
		if _, err := c.Read(buf); !errors.Is(err, ErrNonceExhausted) {
			t.Errorf("Read = %v, want ErrNonceExhausted", err)
		}
		if !raw.closed {
			t.Error("raw conn not closed")
		}
	})
}

// stutterConn fails its first write after cut bytes with err.
type stutterConn struct {
	scriptConn
	cut   int
	err   error
	fired bool
}

func (s *stutterConn) Write(p []byte) (int, error) {
	if !s.fired {
		s.fired = true
		n, _ := s.scriptConn.Write(p[:min(s.cut, len(p))])
		return n, s.err
	}
	return s.scriptConn.Write(p)
}

func TestConnWriteTimeoutResumes(t *testing.T) {
	timeout := &net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded}
	const rec = recordHeaderLen + MaxRecordPlaintext + recordTagSize // a full record on the wire
	first := randomBytes(MaxRecordPlaintext+100, 3)                  // two records
	tests := []struct {
		name      string
		cut       int
		committed int
	}{
		{"nothing written", 0, 0},
		{"one byte", 1, MaxRecordPlaintext},
		{"inside the first record", 1000, MaxRecordPlaintext},
		{"first record exactly", rec, MaxRecordPlaintext},
		{"inside the second record", rec + 3, len(first)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := &stutterConn{cut: tt.cut, err: timeout}
			c := fixedConn(raw, true)
			n, err := c.Write(first)
			if n != tt.committed || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Write = %d, %v; want %d and a timeout", n, err, tt.committed)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("error %v is not a net.Error timeout", err)
			}
			if _, err := c.Write([]byte("tail")); err != nil {
				t.Fatalf("Write after the timeout: %v", err)
			}
			in := &scriptConn{input: *bytes.NewReader(raw.written.Bytes())}
			got, err := io.ReadAll(fixedConn(in, false))
			want := append(bytes.Clone(first[:n]), "tail"...)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("peer read %d bytes (%v), want %d", len(got), err, len(want))
			}
		})
	}
	t.Run("other errors stick", func(t *testing.T) {
		broken := errors.New("broken pipe")
		c := fixedConn(&stutterConn{cut: 5, err: broken}, true)
		if _, err := c.Write(first); err != broken {
			t.Fatalf("Write = %v, want %v", err, broken)
		}
		if _, err := c.Write([]byte("x")); err != broken {
			t.Errorf("next Write = %v, want %v", err, broken)
		}
	})
}

func TestConnClose(t *testing.T) {
	checkLeaks(t)
	client, server := connPair(t)
	var wg sync.WaitGroup
	wg.Add(1)
	var readErr error
	go func() {
		defer wg.Done()
		_, readErr = server.Read(make([]byte, 10))
	}()
	// Let the Read block, then close from another goroutine.
	poll.Until(t, "Read to start", 5*time.Second, func() bool {
		if server.rmu.TryLock() {
			server.rmu.Unlock()
			return false
		}
		return true
	})
	if err := server.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	if !errors.Is(readErr, net.ErrClosed) {
		t.Errorf("blocked Read returned %v, want net.ErrClosed", readErr)
	}
	if err := server.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := server.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close = %v", err)
	}
	if _, err := server.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close = %v", err)
	}
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("peer's Read = %v, want io.EOF", err)
	}
}

func TestConnNettest(t *testing.T) {
	checkLeaks(t)
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, nil, err
		}
		defer ln.Close()
		type result struct {
			c   *Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			raw, err := ln.Accept()
			if err != nil {
				ch <- result{nil, err}
				return
			}
			c, err := Server(testContext(t, 10*time.Second), raw, b, acceptAll)
			ch <- result{c, err}
		}()
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return nil, nil, nil, err
		}
		client, cerr := Client(testContext(t, 10*time.Second), raw, a, b.PeerID())
		s := <-ch
		if err := errors.Join(cerr, s.err); err != nil {
			for _, c := range []*Conn{client, s.c} {
				if c != nil {
					c.Close()
				}
			}
			return nil, nil, nil, err
		}
		return client, s.c, func() { client.Close(); s.c.Close() }, nil
	})
}
