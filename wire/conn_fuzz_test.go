package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// referenceRecords decodes a record stream under key the simplest way,
// independently of Conn: the oracle for FuzzRecordRead.
func referenceRecords(key [32]byte, stream []byte) ([]byte, error) {
	aead, _ := chacha20poly1305.New(key[:])
	var pt []byte
	for nonce := uint64(0); len(stream) > 0; nonce++ {
		if len(stream) < 2 {
			return pt, io.ErrUnexpectedEOF
		}
		n := int(binary.BigEndian.Uint16(stream))
		if n < aead.Overhead() {
			return pt, ErrBadRecord
		}
		if len(stream) < 2+n {
			return pt, io.ErrUnexpectedEOF
		}
		var nb [12]byte
		binary.LittleEndian.PutUint64(nb[4:], nonce)
		out, err := aead.Open(nil, nb[:], stream[2:2+n], nil)
		if err != nil {
			return pt, ErrRecordAuth
		}
		pt = append(pt, out...)
		stream = stream[2+n:]
	}
	return pt, io.EOF
}

// recordSeeds are record streams under testKeyAB for FuzzRecordRead.
func recordSeeds(t testing.TB) [][]byte {
	t.Helper()
	join := func(recs ...[]byte) []byte { return bytes.Join(recs, nil) }
	valid := sealRecords(t, testKeyAB, []byte{0}, []byte("hello"), nil, bytes.Repeat([]byte("x"), 300))
	tampered := bytes.Clone(valid[1])
	tampered[3] ^= 1
	return [][]byte{
		nil,
		join(valid...),
		join(valid[0], tampered),
		join(valid[1], valid[0]),
		join(valid[0], valid[0]),
		{0, 0},
		{0, 15, 1, 2, 3},
		join(valid[0], valid[1][:7]),
	}
}

func FuzzRecordRead(f *testing.F) {
	for i, s := range recordSeeds(f) {
		f.Add(s, uint16(1+i*100))
	}
	f.Fuzz(func(t *testing.T, stream []byte, readSize uint16) {
		want, wantErr := referenceRecords(testKeyAB, stream)
		c := fixedConn(&scriptConn{input: *bytes.NewReader(stream)}, false)
		buf := make([]byte, max(int(readSize), 1))
		var got []byte
		var err error
		for range len(stream) + 2 { // each Read consumes input or ends
			var n int
			n, err = c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		if !errors.Is(err, wantErr) {
			t.Fatalf("Read ended with %v, reference %v", err, wantErr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Read %d bytes, reference %d", len(got), len(want))
		}
	})
}
