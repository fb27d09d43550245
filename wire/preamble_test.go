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
		{"valid", []byte("PNET\x02"), nil, nil},
		{"version 1", []byte("PNET\x01"), ErrVersion, &VersionError{Local: 2, Remote: 1}},
		{"version 3", []byte("PNET\x03"), ErrVersion, &VersionError{Local: 2, Remote: 3}},
		{"version 0", []byte("PNET\x00"), ErrVersion, &VersionError{Local: 2, Remote: 0}},
		{"lower-case magic", []byte("pnet\x02"), ErrBadMagic, nil},
		{"HTTP", []byte("GET /"), ErrBadMagic, nil},
		{"TLS", []byte{0x16, 0x03, 0x01, 0x02, 0x00}, ErrBadMagic, nil},
		{"short", []byte("PNET"), ErrBadMagic, nil},
		{"empty", nil, ErrBadMagic, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := parsePreambleHead(tt.in, ProtocolVersion)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("parsePreambleHead(%q) = %v, want %v", tt.in, err, tt.want)
			}
			var ve *VersionError
			if errors.As(err, &ve) != (tt.version != nil) || (ve != nil && *ve != *tt.version) {
				t.Errorf("parsePreambleHead(%q) = %#v, want %#v", tt.in, err, tt.version)
			}
		})
	}
	if got := appendPreamble([]byte("x"), 7, SuiteAESGCM); !bytes.Equal(got, []byte("xPNET\x07\x02")) {
		t.Errorf("appendPreamble = %q", got)
	}
}

func TestParseSuites(t *testing.T) {
	for b := 0; b < 256; b++ {
		s, err := parseOffer(byte(b))
		if valid := b == 0x01 || b == 0x02; valid != (err == nil) || (valid && s != Suite(b)) {
			t.Errorf("parseOffer(%#02x) = %v, %v", b, s, err)
		}
		if err != nil && !errors.Is(err, ErrSuite) {
			t.Errorf("parseOffer(%#02x) = %v, want ErrSuite", b, err)
		}
	}
	tests := []struct {
		accepted byte
		offer    Suite
		ok       bool
	}{
		{0x03, SuiteChaChaPoly, true},
		{0x03, SuiteAESGCM, true},
		{0x01, SuiteChaChaPoly, true},
		{0x01, SuiteAESGCM, false},
		{0x02, SuiteChaChaPoly, false},
		{0x00, SuiteChaChaPoly, false},
		{0xfd, SuiteAESGCM, false},
		{0xff, SuiteAESGCM, true}, // bits of later suites are ignored
	}
	for _, tt := range tests {
		err := checkAccepted(tt.accepted, tt.offer)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrSuite)) {
			t.Errorf("checkAccepted(%#02x, %v) = %v, want ok=%v", tt.accepted, tt.offer, err, tt.ok)
		}
	}
}

func TestVersionMismatch(t *testing.T) {
	checkLeaks(t)
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	a2, b2 := *a, *b
	a1, b1 := *a, *b
	a2.version, b2.version = 3, 3
	a1.version, b1.version = 1, 1
	tests := []struct {
		name              string
		dialer, responder *Local
	}{
		{"newer dialer", &a2, b},
		{"newer responder", a, &b2},
		{"older dialer", &a1, b},
		{"older responder", a, &b1},
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
		if g := <-got; !bytes.Equal(g, []byte("PNET\x02\x03")) {
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

// TestVersion1Peer plays a peer of protocol version 1 byte for byte: its
// 5-byte preamble, and as a dialer its message 1 in the same write. Both
// sides must see a *VersionError, not a short read of a sixth byte that
// version 1 never sends.
func TestVersion1Peer(t *testing.T) {
	checkLeaks(t)
	a, b := newTestLocal(t, "a"), newTestLocal(t, "b")
	v1 := []byte("PNET\x01")
	want := VersionError{Local: ProtocolVersion, Remote: 1}
	t.Run("version-1 dialer", func(t *testing.T) {
		d, r := tcpPair(t)
		got := rawPeer(d, append(append(bytes.Clone(v1), 0, 32), make([]byte, 32)...), false)
		_, err := Server(testContext(t, 10*time.Second), r, b, acceptAll)
		var ve *VersionError
		if !errors.As(err, &ve) || *ve != want {
			t.Errorf("Server error = %v, want %v", err, &want)
		}
		// The old dialer reads our preamble first and can report version 2.
		if g := <-got; !bytes.HasPrefix(g, []byte("PNET\x02")) {
			t.Errorf("version-1 dialer read %q", g)
		}
	})
	t.Run("version-1 responder", func(t *testing.T) {
		d, r := tcpPair(t)
		got := rawPeer(r, v1, false)
		_, err := Client(testContext(t, 10*time.Second), d, a, b.PeerID())
		var ve *VersionError
		if !errors.As(err, &ve) || *ve != want {
			t.Errorf("Client error = %v, want %v", err, &want)
		}
		if g := <-got; !bytes.HasPrefix(g, []byte("PNET\x02")) {
			t.Errorf("version-1 responder read %q", g)
		}
	})
}

// FuzzPreamble checks the preamble's parsers on arbitrary bytes, as the
// handshake runs them: the head (magic and version), then the suites byte as
// an offer (what a responder does) and as an accepted set (what a dialer
// does with its own offer).
func FuzzPreamble(f *testing.F) {
	f.Add([]byte("PNET\x02\x01"))
	f.Add([]byte("PNET\x02\x02"))
	f.Add([]byte("PNET\x02\x03"))
	f.Add([]byte("PNET\x02\x00"))
	f.Add([]byte("PNET\x01"))
	f.Add([]byte("PNET\x03\x01"))
	f.Add([]byte("GET /"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		head := p[:min(len(p), preambleHeadLen)]
		err := parsePreambleHead(head, ProtocolVersion)
		validHead := bytes.Equal(head, []byte("PNET\x02"))
		if validHead != (err == nil) {
			t.Fatalf("parsePreambleHead(%q) = %v", head, err)
		}
		if err != nil && !errors.Is(err, ErrBadMagic) && !errors.Is(err, ErrVersion) {
			t.Fatalf("parsePreambleHead(%q) = %v, want ErrBadMagic or ErrVersion", head, err)
		}
		if errors.Is(err, ErrVersion) && (len(head) != preambleHeadLen || string(head[:4]) != preambleMagic) {
			t.Fatalf("parsePreambleHead(%q) = %v for a bad magic", head, err)
		}
		if !validHead || len(p) < preambleLen {
			return
		}
		b := p[preambleHeadLen]
		s, err := parseOffer(b)
		if (err == nil) != (b == byte(SuiteChaChaPoly) || b == byte(SuiteAESGCM)) || (err == nil && byte(s) != b) {
			t.Fatalf("parseOffer(%#02x) = %v, %v", b, s, err)
		}
		if err != nil && !errors.Is(err, ErrSuite) {
			t.Fatalf("parseOffer(%#02x) = %v, want ErrSuite", b, err)
		}
		for _, offer := range []Suite{SuiteChaChaPoly, SuiteAESGCM} {
			err := checkAccepted(b, offer)
			if (err == nil) != (b&byte(offer) != 0) || (err != nil && !errors.Is(err, ErrSuite)) {
				t.Fatalf("checkAccepted(%#02x, %v) = %v", b, offer, err)
			}
		}
		// What this package sends parses back to what it meant.
		if got, err := parseOffer(appendPreamble(nil, ProtocolVersion, s)[preambleHeadLen]); s.valid() && (got != s || err != nil) {
			t.Fatalf("own offer of %v parses as %v, %v", s, got, err)
		}
	})
}
