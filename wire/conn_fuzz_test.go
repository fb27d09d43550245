package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// referenceRecords decodes a record stream under suite and key the simplest
// way, independently of Conn: the oracle for FuzzRecordRead.
func referenceRecords(suite Suite, key [32]byte, stream []byte) ([]byte, error) {
	aead, _ := referenceAEAD(suite, key)
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
		out, err := aead.Open(nil, referenceNonce(suite, nonce), stream[2:2+n], nil)
		if err != nil {
			return pt, ErrRecordAuth
		}
		pt = append(pt, out...)
		stream = stream[2+n:]
	}
	return pt, io.EOF
}

// recordSeeds are record streams under suite and testKeyAB for
// FuzzRecordRead.
func recordSeeds(t testing.TB, suite Suite) [][]byte {
	t.Helper()
	join := func(recs ...[]byte) []byte { return bytes.Join(recs, nil) }
	var valid [][]byte
	for i, pt := range [][]byte{{0}, []byte("hello"), nil, bytes.Repeat([]byte("x"), 300)} {
		valid = append(valid, sealRecordSuite(t, suite, testKeyAB, uint64(i), pt))
	}
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

// FuzzRecordRead reads arbitrary record streams under either suite (aes
// picks AESGCM) in reads of readSize bytes and compares what a Conn returns
// with the reference decoder.
func FuzzRecordRead(f *testing.F) {
	for _, suite := range []Suite{SuiteChaChaPoly, SuiteAESGCM} {
		for i, s := range recordSeeds(f, suite) {
			f.Add(s, uint16(1+i*100), suite == SuiteAESGCM)
		}
	}
	f.Fuzz(func(t *testing.T, stream []byte, readSize uint16, aes bool) {
		suite := SuiteChaChaPoly
		if aes {
			suite = SuiteAESGCM
		}
		want, wantErr := referenceRecords(suite, testKeyAB, stream)
		c := fixedConnSuite(&scriptConn{input: *bytes.NewReader(stream)}, false, suite)
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
