package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"
)

// fuzzSeedMessages are real messages of every type for the fuzz seeds.
func fuzzSeedMessages() []Message {
	return []Message{
		{Type: TypeCall, ID: 1, Timeout: 5 * time.Second, Handle: "echo", Body: []byte("hi")},
		{Type: TypeCall, ID: 42, Handle: "x"},
		{Type: TypeReply, ID: 1, Body: []byte("hi")},
		{Type: TypeReply, ID: 2, Status: StatusHandlerError, Body: []byte("boom")},
		{Type: TypeSend, Handle: "log", Body: []byte("x")},
		{Type: TypeCancel, ID: 1},
		{Type: TypePing, Opaque: 0x0102030405060708},
		{Type: TypePong, Opaque: 0x0102030405060708},
		{Type: TypeGoaway, Code: GoawayProtocolError, Body: []byte("bad")},
	}
}

// FuzzDecodeMessage checks that DecodeMessage never panics, that whatever it
// accepts re-encodes to exactly its input (the encoding is canonical), and
// that a Decoder reading the same bytes agrees with it.
func FuzzDecodeMessage(f *testing.F) {
	for _, m := range fuzzSeedMessages() {
		f.Add(mustAppend(f, nil, &m))
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 1, 8})
	f.Add([]byte{0, 0, 0, 15, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		err := DecodeMessage(b, &m, DefaultMaxMessageSize)

		// The Decoder sees the same message when b is one whole message.
		framed := len(b) >= LengthSize && int(binary.BigEndian.Uint32(b)) == len(b)-LengthSize
		if framed {
			var dm Message
			derr := NewDecoder(bytes.NewReader(b), DefaultMaxMessageSize).Decode(&dm)
			if errorKind(derr) != errorKind(err) {
				t.Fatalf("Decoder error %v, DecodeMessage error %v", derr, err)
			}
			if err == nil && !equalMessage(&dm, &m) {
				t.Fatalf("Decoder = %s, DecodeMessage = %s", describe(&dm), describe(&m))
			}
		}
		if err != nil {
			if errorKind(err) == nil {
				t.Fatalf("DecodeMessage error %v wraps no sentinel", err)
			}
			return
		}
		if !framed {
			t.Fatalf("DecodeMessage accepted %d bytes that are not one message", len(b))
		}
		enc, err := AppendMessage(nil, &m, DefaultMaxMessageSize)
		if err != nil {
			t.Fatalf("re-encoding decoded %s: %v", describe(&m), err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding is not canonical:\n got %x\nwant %x", enc, b)
		}
	})
}

// errorKind returns the sentinel err wraps, or nil.
func errorKind(err error) error {
	for _, s := range []error{ErrMessageTooLarge, ErrMalformed, ErrUnknownType, io.ErrUnexpectedEOF} {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

// FuzzDecoderStream runs a Decoder with a small maximum over arbitrary bytes:
// it must not panic, each message it returns must re-encode to exactly the
// bytes it came from, and once it fails it must keep failing the same way.
func FuzzDecoderStream(f *testing.F) {
	const limit = 64
	var all []byte
	for _, m := range fuzzSeedMessages() {
		all = mustAppend(f, all, &m)
		f.Add(mustAppend(f, nil, &m))
	}
	f.Add(all)
	f.Add(append(all[:len(all):len(all)], 0, 0, 0, limit+1))                      // then too long
	f.Add(append(all[:len(all):len(all)], 0, 0, 0, 9, byte(TypeCancel), 0, 0, 0)) // then cut short
	f.Fuzz(func(t *testing.T, stream []byte) {
		d := NewDecoder(bytes.NewReader(stream), limit)
		off := 0
		var m Message
		for {
			err := d.Decode(&m)
			if err == io.EOF {
				if off != len(stream) {
					t.Fatalf("io.EOF at offset %d of %d", off, len(stream))
				}
				return
			}
			if err != nil {
				if errorKind(err) == nil {
					t.Fatalf("Decode error %v wraps no sentinel", err)
				}
				if err2 := d.Decode(&m); err2 != err {
					t.Fatalf("Decode after error %v returned %v", err, err2)
				}
				return
			}
			n := LengthSize + int(binary.BigEndian.Uint32(stream[off:]))
			if n-LengthSize > limit {
				t.Fatalf("Decode accepted a message of length %d over limit %d", n-LengthSize, limit)
			}
			enc, err := AppendMessage(nil, &m, limit)
			if err != nil {
				t.Fatalf("re-encoding decoded %s: %v", describe(&m), err)
			}
			if !bytes.Equal(enc, stream[off:off+n]) {
				t.Fatalf("message at offset %d re-encodes as %x, want %x", off, enc, stream[off:off+n])
			}
			off += n
		}
	})
}
