package wire

import (
	"bytes"
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

// sealRecord returns one record (§4) of pt under key with the given nonce,
// built independently of Conn.
func sealRecord(t testing.TB, key [32]byte, nonce uint64, pt []byte) []byte {
	t.Helper()
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		t.Fatal(err)
	}
	var n [chacha20poly1305.NonceSize]byte
	binary.LittleEndian.PutUint64(n[4:], nonce)
	rec := binary.BigEndian.AppendUint16(nil, uint16(len(pt)+aead.Overhead()))
	return aead.Seal(rec, n[:], pt, nil)
}

// sealRecords returns consecutive records of each plaintext, from nonce 0.
func sealRecords(t testing.TB, key [32]byte, pts ...[]byte) [][]byte {
	t.Helper()
	out := make([][]byte, len(pts))
	for i, pt := range pts {
		out[i] = sealRecord(t, key, uint64(i), pt)
	}
	return out
}

// fixedConn returns a Conn over raw with the fixed test keys, as side a
// (sends with testKeyAB) or b.
func fixedConn(raw net.Conn, a bool) *Conn {
	send, recv := testKeyAB, testKeyBA
	if !a {
		send, recv = recv, send
	}
	return newConn(raw, newInbuf(raw), send, recv, testPeerID)
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
