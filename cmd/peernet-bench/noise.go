package main

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/flynn/noise"
)

// The Noise framing floor runs the raw TCP baseline's frames (tcp.go) over
// a minimal Noise connection: an XX handshake with
// Noise_XX_25519_ChaChaPoly_BLAKE2s (flynn/noise, fresh static keys, empty
// payloads: no identities, no trust check, no preamble), then the records
// of docs/protocol.md §4 (2-byte length, ChaCha20-Poly1305 ciphertext of at
// most 65519 bytes plus tag). It is what PeerNet's encrypted transport
// costs with no RPC layer on top, written the plain way: a record is
// decrypted in place in its read buffer and copied out; one Write seals
// its records into one buffer and makes one write.

const (
	noiseMaxRecord    = 65535
	noiseTagSize      = 16
	noiseMaxPlaintext = noiseMaxRecord - noiseTagSize
)

var noiseSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)

func newNoiseSystem() (system, error) {
	return newFramedSystem("Noise floor", noiseWrap)
}

// noiseWrap runs the XX handshake on c and returns the record connection.
func noiseWrap(c net.Conn, dialer bool) (net.Conn, error) {
	static, err := noiseSuite.GenerateKeypair(rand.Reader)
	if err != nil {
		return nil, err
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   noiseSuite,
		Pattern:       noise.HandshakeXX,
		Initiator:     dialer,
		StaticKeypair: static,
	})
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	br := bufio.NewReaderSize(c, 2+noiseMaxRecord)
	var send, recv *noise.CipherState
	// XX: the dialer writes messages 1 and 3, the responder message 2.
	for i := range 3 {
		var cs1, cs2 *noise.CipherState
		if (i%2 == 0) == dialer {
			msg, a, b, err := hs.WriteMessage(make([]byte, 2, 256), nil)
			if err != nil {
				return nil, err
			}
			binary.BigEndian.PutUint16(msg, uint16(len(msg)-2))
			if _, err := c.Write(msg); err != nil {
				return nil, err
			}
			cs1, cs2 = a, b
		} else {
			msg, err := readNoiseFrame(br, make([]byte, 2+noiseMaxRecord))
			if err != nil {
				return nil, err
			}
			if _, cs1, cs2, err = hs.ReadMessage(nil, msg); err != nil {
				return nil, err
			}
		}
		if cs1 != nil {
			// Split: the first state encrypts the initiator's direction.
			send, recv = cs1, cs2
			if !dialer {
				send, recv = cs2, cs1
			}
		}
	}
	if send == nil {
		return nil, errors.New("noise floor: handshake did not complete")
	}
	return &noiseConn{Conn: c, br: br, send: send, recv: recv, rbuf: make([]byte, 2+noiseMaxRecord)}, nil
}

// readNoiseFrame reads a 2-byte length and that many bytes into buf.
func readNoiseFrame(r io.Reader, buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(buf))
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// noiseConn carries a byte stream in Noise transport records. Read and Write
// may run concurrently with each other, not with themselves.
type noiseConn struct {
	net.Conn
	br *bufio.Reader

	recv    *noise.CipherState
	rbuf    []byte
	pending []byte // decrypted, not yet read

	wmu  sync.Mutex
	send *noise.CipherState
	wbuf []byte
}

func (c *noiseConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		ct, err := readNoiseFrame(c.br, c.rbuf)
		if err != nil {
			return 0, err
		}
		if c.pending, err = c.recv.Decrypt(ct[:0], nil, ct); err != nil {
			return 0, fmt.Errorf("noise floor: %w", err)
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *noiseConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	buf := c.wbuf[:0]
	for rest := p; len(rest) > 0; {
		chunk := rest[:min(len(rest), noiseMaxPlaintext)]
		rest = rest[len(chunk):]
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(chunk)+noiseTagSize))
		var err error
		if buf, err = c.send.Encrypt(buf, nil, chunk); err != nil {
			return 0, err
		}
	}
	c.wbuf = buf
	if _, err := c.Conn.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}
