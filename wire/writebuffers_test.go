package wire

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

// TestWriteBuffers checks that WriteBuffers puts on the wire exactly the
// records that writing each buffer with Write in turn puts there (no record
// spans two buffers), however the bytes are split, in each suite; that the
// stream reads back; and that the buffers are not modified.
func TestWriteBuffers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 5*MaxRecordPlaintext+1234)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	sizes := []int{0, 1, 100, MaxRecordPlaintext - 1, MaxRecordPlaintext, MaxRecordPlaintext + 1,
		4 * MaxRecordPlaintext, len(data)}
	for _, suite := range []Suite{SuiteChaChaPoly, SuiteAESGCM} {
		for _, size := range sizes {
			p := data[:size]
			for trial := range 20 {
				var bufs [][]byte
				for rest := p; len(rest) > 0 || len(bufs) < 2; {
					k := 0
					if len(rest) > 0 {
						k = rng.IntN(min(len(rest), 3*MaxRecordPlaintext/2) + 1)
					}
					bufs = append(bufs, rest[:k]) // empty buffers too
					rest = rest[k:]
					if len(rest) == 0 && len(bufs) >= 2 {
						break
					}
				}
				want := &scriptConn{}
				cw := fixedConnSuite(want, true, suite)
				for _, b := range bufs {
					if n, err := cw.Write(b); n != len(b) || err != nil {
						t.Fatalf("Write: %d, %v", n, err)
					}
				}
				before := bytes.Clone(p)
				got := &scriptConn{}
				c := fixedConnSuite(got, true, suite)
				if n, err := c.WriteBuffers(bufs); n != size || err != nil {
					t.Fatalf("%v, %d bytes, trial %d: WriteBuffers = %d, %v", suite, size, trial, n, err)
				}
				if !bytes.Equal(got.written.Bytes(), want.written.Bytes()) {
					t.Fatalf("%v, %d bytes in %d buffers: records differ from one Write per buffer", suite, size, len(bufs))
				}
				if !bytes.Equal(p, before) {
					t.Fatalf("%v: WriteBuffers modified its buffers", suite)
				}
				in := &scriptConn{input: *bytes.NewReader(got.written.Bytes())}
				if back, err := io.ReadAll(fixedConnSuite(in, false, suite)); !bytes.Equal(back, p) || err != nil {
					t.Fatalf("%v: read back %d bytes, %v", suite, len(back), err)
				}
			}
		}
	}
}

// TestAppendHeader checks that a header from AppendHeader followed by the
// body is exactly what AppendMessage encodes, for every type, and that a
// Body set on a type without one is ignored by both.
func TestAppendHeader(t *testing.T) {
	msgs := append(fuzzSeedMessages(),
		Message{Type: TypeCancel, ID: 3, Body: []byte("ignored")},
		Message{Type: TypePing, Opaque: 9, Body: []byte("ignored")})
	for _, m := range msgs {
		want, err := AppendMessage([]byte("x"), &m, 0)
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := AppendHeader([]byte("x"), &m, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := hdr
		switch m.Type {
		case TypeCall, TypeReply, TypeSend, TypeGoaway:
			got = append(hdr, m.Body...)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: header+body %x, AppendMessage %x", describe(&m), got, want)
		}
	}
	big := Message{Type: TypeReply, ID: 1, Body: make([]byte, 100)}
	if _, err := AppendHeader(nil, &big, 100); err == nil {
		t.Error("AppendHeader accepted a message whose body makes it too large")
	}
}

// TestWriteBuffersManySmall writes more short buffers than one write to the
// network carries records, so the records go out in several batches.
func TestWriteBuffersManySmall(t *testing.T) {
	var bufs [][]byte
	want := &scriptConn{}
	cw := fixedConn(want, true)
	for i := range 3*maxRecordsPerWrite + 5 {
		b := bytes.Repeat([]byte{byte(i)}, 1+i%7)
		bufs = append(bufs, b)
		if _, err := cw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	spy := &countingConn{}
	c := fixedConn(spy, true)
	if _, err := c.WriteBuffers(bufs); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(spy.written.Bytes(), want.written.Bytes()) {
		t.Fatal("records differ from one Write per buffer")
	}
	if spy.writes != 4 {
		t.Errorf("%d writes to the network, want 4 (at most %d records each)", spy.writes, maxRecordsPerWrite)
	}
}

type countingConn struct {
	scriptConn
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes++
	return c.scriptConn.Write(p)
}
