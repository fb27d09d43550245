package wire

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// fuzzLocals returns the dialer and responder Locals of the fuzz targets:
// fixed identities and static keys, and ephemeral keys from a fixed stream,
// so a whole transcript is reproducible and a recorded one replays.
func fuzzLocals(t testing.TB) (dialer, responder *Local) {
	t.Helper()
	mk := func(seed byte) *Local {
		s := signerFromSeed(t, bytes.Repeat([]byte{seed}, ed25519.SeedSize))
		static, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{seed + 1}, x25519KeyLen))
		if err != nil {
			t.Fatal(err)
		}
		l, err := newLocal(s, static)
		if err != nil {
			t.Fatal(err)
		}
		l.rand = rand.NewChaCha8([32]byte{seed})
		return l
	}
	return mk(0xd0), mk(0xe0)
}

// recordTranscript runs a handshake between the fuzz Locals and returns what
// each side wrote: the dialer's stream (input for a Server) and the
// responder's (input for a Client).
func recordTranscript(t testing.TB) (fromDialer, fromResponder []byte) {
	t.Helper()
	a, b := fuzzLocals(t)
	d, r := tcpPair(t)
	var mu sync.Mutex
	var dw, rw bytes.Buffer
	tap := func(buf *bytes.Buffer) func([]byte) []byte {
		return func(p []byte) []byte {
			mu.Lock()
			buf.Write(p)
			mu.Unlock()
			return p
		}
	}
	sd, sr := &spyConn{Conn: d}, &spyConn{Conn: r}
	sd.setMutate(tap(&dw))
	sr.setMutate(tap(&rw))
	cr, srv := runHandshake(t, testContext(t, 10*time.Second), sd, sr, a, b, b.PeerID(), acceptAll)
	if cr.err != nil || srv.err != nil {
		t.Fatalf("handshake: client: %v; server: %v", cr.err, srv.err)
	}
	mu.Lock()
	defer mu.Unlock()
	return bytes.Clone(dw.Bytes()), bytes.Clone(rw.Bytes())
}

func TestRecordedTranscriptReplays(t *testing.T) {
	fromDialer, fromResponder := recordTranscript(t)
	again, _ := recordTranscript(t)
	if !bytes.Equal(fromDialer, again) {
		t.Fatal("transcript is not reproducible")
	}
	for _, server := range []bool{true, false} {
		in := fromResponder
		if server {
			in = fromDialer
		}
		if c, err := handshakeScript(t, server, in); err != nil {
			t.Errorf("replaying to server=%v: %v", server, err)
		} else {
			c.Close()
		}
	}
}

func TestHandshakeMessageSizes(t *testing.T) {
	fromDialer, fromResponder := recordTranscript(t)
	// §3.3: message 1 is 32 bytes, 2 is 193, 3 is 161; the verdict record
	// is 2 + 1 + 16.
	if want := preambleLen + 2 + 32 + 2 + 161; len(fromDialer) != want {
		t.Errorf("dialer sent %d bytes, want %d", len(fromDialer), want)
	}
	if want := preambleLen + 2 + 193 + 2 + 17; len(fromResponder) != want {
		t.Errorf("responder sent %d bytes, want %d", len(fromResponder), want)
	}
}

// handshakeScript runs Server (or Client) against a peer that sends input
// and ignores what it is sent.
func handshakeScript(t testing.TB, server bool, input []byte) (*Conn, error) {
	a, b := fuzzLocals(t)
	raw := &scriptConn{input: *bytes.NewReader(input)}
	if server {
		return Server(context.Background(), raw, b, acceptAll)
	}
	return Client(context.Background(), raw, a, b.PeerID())
}

// FuzzHandshake feeds arbitrary bytes as the peer's side of a handshake to
// Server (server=true) or Client. Seeds include a recorded valid transcript,
// which the fixed keys make replayable.
func FuzzHandshake(f *testing.F) {
	fromDialer, fromResponder := recordTranscript(f)
	f.Add(true, fromDialer)
	f.Add(false, fromResponder)
	f.Add(true, []byte("PNET\x01"))
	f.Add(false, []byte("PNET\x02"))
	f.Add(true, append([]byte("PNET\x01\xff\xff"), make([]byte, 40)...))
	_, b := fuzzLocals(f)
	f.Fuzz(func(t *testing.T, server bool, input []byte) {
		c, err := handshakeScript(t, server, input)
		if err == nil {
			if !server && c.RemotePeer() != b.PeerID() {
				t.Fatalf("Client accepted %s, expected %s", c.RemotePeer(), b.PeerID())
			}
			if c.RemotePeer().IsZero() {
				t.Fatal("handshake accepted the zero PeerID")
			}
			c.Close()
			return
		}
		if c != nil {
			t.Fatal("error with a Conn")
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("timeout without a deadline: %v", err)
		}
	})
}

// FuzzIdentityPayload checks the payload decoder: it must not panic, and
// whatever it accepts must really be a 97-byte version-1 payload whose
// signature binds static to the key it names.
func FuzzIdentityPayload(f *testing.F) {
	a, b := fuzzLocals(f)
	f.Add(a.payload, a.keypair.Public)
	f.Add(b.payload, b.keypair.Public)
	f.Add(a.payload, b.keypair.Public)
	f.Add(a.payload[:96], a.keypair.Public)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, payload, static []byte) {
		id, err := parsePayload(payload, static)
		if err != nil {
			if !errors.Is(err, ErrBadPayload) || !id.IsZero() {
				t.Fatalf("parsePayload = %s, %v", id, err)
			}
			return
		}
		key := id.Bytes()
		msg := staticKeyMessage(static)
		switch {
		case len(payload) != payloadLen, payload[0] != payloadVersion:
			t.Fatalf("accepted a %d-byte payload of version %d", len(payload), payload[0])
		case !bytes.Equal(key[:], payload[1:33]):
			t.Fatal("returned PeerID is not the payload's key")
		case !ed25519.Verify(key[:], msg[:], payload[33:]):
			t.Fatal("accepted a signature that does not verify")
		}
	})
}
