package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

func TestParsePreamble(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    error
		version *VersionError
	}{
		{"valid", []byte("PNET\x01"), nil, nil},
		{"version 2", []byte("PNET\x02"), ErrVersion, &VersionError{Local: 1, Remote: 2}},
		{"version 0", []byte("PNET\x00"), ErrVersion, &VersionError{Local: 1, Remote: 0}},
		{"lower-case magic", []byte("pnet\x01"), ErrBadMagic, nil},
		{"HTTP", []byte("GET /"), ErrBadMagic, nil},
		{"TLS", []byte{0x16, 0x03, 0x01, 0x02, 0x00}, ErrBadMagic, nil},
		{"short", []byte("PNET"), ErrBadMagic, nil},
		{"empty", nil, ErrBadMagic, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := parsePreamble(tt.in, ProtocolVersion)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("parsePreamble(%q) = %v, want %v", tt.in, err, tt.want)
			}
			var ve *VersionError
			if errors.As(err, &ve) != (tt.version != nil) || (ve != nil && *ve != *tt.version) {
				t.Errorf("parsePreamble(%q) = %#v, want %#v", tt.in, err, tt.version)
			}
		})
	}
	if got := appendPreamble([]byte("x"), 7); !bytes.Equal(got, []byte("xPNET\x07")) {
		t.Errorf("appendPreamble = %q", got)
	}
}

func TestVersionMismatch(t *testing.T) {
	checkLeaks(t)
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	a2, b2 := *a, *b
	a2.version, b2.version = 2, 2
	tests := []struct {
		name              string
		dialer, responder *Local
	}{
		{"newer dialer", &a2, b},
		{"newer responder", a, &b2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, r := tcpPair(t)
			cr, sr := runHandshake(t, testContext(t, 10*time.Second), d, r, tt.dialer, tt.responder, b.PeerID(), acceptAll)
			for _, side := range []struct {
				name   string
				err    error
				local  *Local
				remote *Local
			}{
				{"dialer", cr.err, tt.dialer, tt.responder},
				{"responder", sr.err, tt.responder, tt.dialer},
			} {
				var ve *VersionError
				if !errors.As(side.err, &ve) || !errors.Is(side.err, ErrVersion) {
					t.Errorf("%s: error %v, want a *VersionError", side.name, side.err)
					continue
				}
				want := VersionError{Local: side.local.protocolVersion(), Remote: side.remote.protocolVersion()}
				if *ve != want {
					t.Errorf("%s: %+v, want %+v", side.name, *ve, want)
				}
			}
		})
	}
}

func TestNotPeerNet(t *testing.T) {
	checkLeaks(t)
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	t.Run("HTTP client to a responder", func(t *testing.T) {
		d, r := tcpPair(t)
		got := rawPeer(d, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false)
		_, err := Server(testContext(t, 10*time.Second), r, b, acceptAll)
		if !errors.Is(err, ErrBadMagic) {
			t.Errorf("Server error = %v, want ErrBadMagic", err)
		}
		// What the stranger reads first says what it reached.
		if g := <-got; !bytes.Equal(g, []byte("PNET\x01")) {
			t.Errorf("client read %q, want the preamble alone", g)
		}
	})
	t.Run("dialer to an SSH server", func(t *testing.T) {
		d, r := tcpPair(t)
		rawPeer(r, []byte("SSH-2.0-OpenSSH_9.6\r\n"), false)
		_, err := Client(testContext(t, 10*time.Second), d, a, b.PeerID())
		if !errors.Is(err, ErrBadMagic) {
			t.Errorf("Client error = %v, want ErrBadMagic", err)
		}
	})
	t.Run("responder closes at once", func(t *testing.T) {
		d, r := tcpPair(t)
		r.Close()
		_, err := Client(testContext(t, 10*time.Second), d, a, b.PeerID())
		if !errors.Is(err, io.EOF) && !isReset(err) {
			t.Errorf("Client error = %v, want EOF or reset", err)
		}
	})
}

func FuzzPreamble(f *testing.F) {
	f.Add([]byte("PNET\x01"))
	f.Add([]byte("PNET\x02"))
	f.Add([]byte("GET /"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		err := parsePreamble(p, ProtocolVersion)
		valid := bytes.Equal(p, appendPreamble(nil, ProtocolVersion))
		if valid != (err == nil) {
			t.Fatalf("parsePreamble(%q) = %v", p, err)
		}
		if err != nil && !errors.Is(err, ErrBadMagic) && !errors.Is(err, ErrVersion) {
			t.Fatalf("parsePreamble(%q) = %v, want ErrBadMagic or ErrVersion", p, err)
		}
		if errors.Is(err, ErrVersion) && (len(p) != preambleLen || string(p[:4]) != preambleMagic) {
			t.Fatalf("parsePreamble(%q) = %v for a bad magic", p, err)
		}
	})
}
