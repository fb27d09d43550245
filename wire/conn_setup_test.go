package wire

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/peernet/peernet/trust"

	"golang.org/x/crypto/chacha20poly1305"
)

// Fixed record keys for tests that drive the record layer without a
// handshake.
var (
	testKeyAB = [32]byte{0: 0xab, 31: 0x01} // a -> b
	testKeyBA = [32]byte{0: 0xba, 31: 0x02} // b -> a
)

// sealRecord returns one ChaChaPoly record (§4) of pt under key with the
// given nonce, built independently of Conn.
func sealRecord(t testing.TB, key [32]byte, nonce uint64, pt []byte) []byte {
	t.Helper()
	return sealRecordSuite(t, SuiteChaChaPoly, key, nonce, pt)
}

// sealRecordSuite returns one record of pt under suite's AEAD, key and the
// given nonce, built independently of Conn: Noise's nonce encodings, four
// zero bytes and the counter little-endian (ChaChaPoly) or big-endian
// (AESGCM).
func sealRecordSuite(t testing.TB, suite Suite, key [32]byte, nonce uint64, pt []byte) []byte {
	t.Helper()
	aead, err := referenceAEAD(suite, key)
	if err != nil {
		t.Fatal(err)
	}
	rec := binary.BigEndian.AppendUint16(nil, uint16(len(pt)+aead.Overhead()))
	return aead.Seal(rec, referenceNonce(suite, nonce), pt, nil)
}

func referenceAEAD(suite Suite, key [32]byte) (cipher.AEAD, error) {
	if suite == SuiteAESGCM {
		b, err := aes.NewCipher(key[:])
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}
	return chacha20poly1305.New(key[:])
}

func referenceNonce(suite Suite, nonce uint64) []byte {
	n := make([]byte, 12)
	if suite == SuiteAESGCM {
		binary.BigEndian.PutUint64(n[4:], nonce)
	} else {
		binary.LittleEndian.PutUint64(n[4:], nonce)
	}
	return n
}

// fixedConn returns a Conn over raw with the fixed test keys, as side a
// (sends with testKeyAB) or b.
func fixedConn(raw net.Conn, a bool) *Conn {
	return fixedConnSuite(raw, a, SuiteChaChaPoly)
}

// fixedConnSuite is fixedConn with the given suite.
func fixedConnSuite(raw net.Conn, a bool, suite Suite) *Conn {
	send, recv := testKeyAB, testKeyBA
	if !a {
		send, recv = recv, send
	}
	return newConn(raw, newInbuf(raw), suite, send, recv, peerIdentity{id: testPeerID, maxSize: DefaultMaxMessageSize})
}

// testPeerID is a fixed, valid PeerID for Conns built without a handshake.
var testPeerID = func() trust.PeerID {
	id, err := trust.PeerIDFromBytes(append([]byte{1}, make([]byte, 31)...))
	if err != nil {
		panic(err)
	}
	return id
}()

// scriptConn is a net.Conn that reads a fixed input and records what is
// written; deadlines are ignored. It is not safe for concurrent use.
type scriptConn struct {
	input   bytes.Reader
	written bytes.Buffer
	closed  bool
}

func (s *scriptConn) Read(p []byte) (int, error) {
	if s.closed {
		return 0, net.ErrClosed
	}
	return s.input.Read(p)
}

func (s *scriptConn) Write(p []byte) (int, error) {
	if s.closed {
		return 0, net.ErrClosed
	}
	return s.written.Write(p)
}

func (s *scriptConn) Close() error                     { s.closed = true; return nil }
func (s *scriptConn) LocalAddr() net.Addr              { return scriptAddr{} }
func (s *scriptConn) RemoteAddr() net.Addr             { return scriptAddr{} }
func (s *scriptConn) SetDeadline(time.Time) error      { return nil }
func (s *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (s *scriptConn) SetWriteDeadline(time.Time) error { return nil }

type scriptAddr struct{}

func (scriptAddr) Network() string { return "script" }
func (scriptAddr) String() string  { return "script" }
