package trust

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// testPeerID returns a deterministic PeerID derived from n.
func testPeerID(tb testing.TB, n byte) PeerID {
	tb.Helper()
	seed := bytes.Repeat([]byte{n}, ed25519.SeedSize)
	id, err := PeerIDFromPublicKey(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	if err != nil {
		tb.Fatalf("PeerIDFromPublicKey: %v", err)
	}
	return id
}

func TestParsePeerIDErrors(t *testing.T) {
	good := testPeerID(t, 1).String()
	body := good[len(PeerIDPrefix):]
	swapLast := func(s string) string {
		// Same 5-bit group with one of the two spare bits set: decodes to the
		// same bytes, so only the canonical-form check catches it.
		v := strings.IndexByte("abcdefghijklmnopqrstuvwxyz234567", s[len(s)-1])
		return s[:len(s)-1] + string("abcdefghijklmnopqrstuvwxyz234567"[v^1])
	}
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "does not start with"},
		{"wrong prefix", "pn2" + body, "does not start with"},
		{"no prefix", body, "does not start with"},
		{"short", good[:len(good)-1], "60 characters, want 61"},
		{"long", good + "a", "62 characters, want 61"},
		{"digit one", good[:10] + "1" + good[11:], `invalid character '1' at position 11`},
		{"padding", good[:len(good)-1] + "=", `invalid character '='`},
		{"unicode", good[:5] + "é" + good[7:], "non-ASCII character at position 6"},
		{"kelvin sign", strings.Replace(good, "k", "\u212a", 1), "non-ASCII"},
		{"no-break space", "\u00a0" + good, "non-ASCII"},
		{"typo", good[:20] + string(good[20]^1) + good[21:], "checksum mismatch"},
		{"spare bits", swapLast(good), "not canonical"},
		{"zero key text", PeerID{}.mustMarshal(t), "all-zero key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ParsePeerID(tt.in)
			if !errors.Is(err, ErrBadPeerID) {
				t.Fatalf("ParsePeerID(%q) = %v, %v; want ErrBadPeerID", tt.in, id, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if !id.IsZero() {
				t.Errorf("got non-zero id %v with an error", id)
			}
		})
	}
}

func (id PeerID) mustMarshal(tb testing.TB) string {
	tb.Helper()
	b, err := id.MarshalText()
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// TestParsePeerIDEveryTypo checks that every single-character substitution
// within the alphabet is refused.
func TestParsePeerIDEveryTypo(t *testing.T) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	good := testPeerID(t, 2).String()
	for i := len(PeerIDPrefix); i < len(good); i++ {
		for _, c := range []byte(alphabet) {
			if c == good[i] {
				continue
			}
			typo := good[:i] + string(c) + good[i+1:]
			if id, err := ParsePeerID(typo); !errors.Is(err, ErrBadPeerID) {
				t.Fatalf("ParsePeerID(%q) (position %d) = %v, %v; want ErrBadPeerID", typo, i+1, id, err)
			}
		}
	}
}

func TestParsePeerIDAccepts(t *testing.T) {
	id := testPeerID(t, 3)
	s := id.String()
	for _, in := range []string{s, strings.ToUpper(s), " " + s + "\n"} {
		got, err := ParsePeerID(in)
		if err != nil || got != id {
			t.Errorf("ParsePeerID(%q) = %v, %v; want %v", in, got, err, id)
		}
	}
}

func TestPeerIDTextRoundTrip(t *testing.T) {
	for n := range byte(20) {
		id := testPeerID(t, n)
		s := id.String()
		if !strings.HasPrefix(s, PeerIDPrefix) || len(s) != peerIDTextLen {
			t.Fatalf("String() = %q", s)
		}
		back, err := ParsePeerID(s)
		if err != nil || back != id {
			t.Fatalf("ParsePeerID(String()) = %v, %v; want %v", back, err, id)
		}
		if !strings.HasPrefix(s, id.Short()) || len(id.Short()) != len(PeerIDPrefix)+8 {
			t.Errorf("Short() = %q, not a prefix of %q", id.Short(), s)
		}
		if !bytes.Equal(id.PublicKey(), func() []byte { b := id.Bytes(); return b[:] }()) {
			t.Errorf("PublicKey and Bytes disagree")
		}
	}
}

func TestPeerIDJSON(t *testing.T) {
	a, b := testPeerID(t, 4), testPeerID(t, 5)
	type doc struct {
		Self  PeerID            `json:"self"`
		Peers map[PeerID]string `json:"peers"`
	}
	in := doc{Self: a, Peers: map[PeerID]string{a: "alpha", b: "beta"}}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"`+b.String()+`":"beta"`)) {
		t.Errorf("map key not in text form: %s", data)
	}
	var out doc
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if out.Self != a || len(out.Peers) != 2 || out.Peers[a] != "alpha" || out.Peers[b] != "beta" {
		t.Errorf("round trip: got %+v, want %+v", out, in)
	}

	bad := []byte(`{"peers":{"pn1nope":"x"}}`)
	if err := json.Unmarshal(bad, &out); !errors.Is(err, ErrBadPeerID) {
		t.Errorf("bad map key: err = %v, want ErrBadPeerID", err)
	}
}

func TestPeerIDZeroAndBytes(t *testing.T) {
	var zero PeerID
	if zero.String() != "pn1-zero" || zero.Short() != "pn1-zero" {
		t.Errorf("zero: String %q Short %q", zero.String(), zero.Short())
	}
	if _, err := ParsePeerID(zero.String()); !errors.Is(err, ErrBadPeerID) {
		t.Errorf("zero text parsed: %v", err)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"short", make([]byte, 31)},
		{"long", make([]byte, 33)},
		{"all zero", make([]byte, 32)},
	}
	for _, tt := range tests {
		if _, err := PeerIDFromBytes(tt.in); !errors.Is(err, ErrBadPeerID) {
			t.Errorf("%s: PeerIDFromBytes err = %v, want ErrBadPeerID", tt.name, err)
		}
	}
}

func TestPeerIDVerify(t *testing.T) {
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello")
	sig := id.Sign(msg)
	tests := []struct {
		name string
		msg  []byte
		sig  []byte
		want bool
	}{
		{"valid", msg, sig, true},
		{"other message", []byte("hellO"), sig, false},
		{"short signature", msg, sig[:63], false},
		{"flipped bit", msg, append([]byte{sig[0] ^ 1}, sig[1:]...), false},
	}
	for _, tt := range tests {
		if got := id.PeerID().Verify(tt.msg, tt.sig); got != tt.want {
			t.Errorf("%s: Verify = %v, want %v", tt.name, got, tt.want)
		}
	}
	if other := testPeerID(t, 9); other.Verify(msg, sig) {
		t.Error("another key verified the signature")
	}
}

func FuzzParsePeerID(f *testing.F) {
	good := testPeerID(f, 1).String()
	for _, s := range []string{good, strings.ToUpper(good), good[:20], "pn1", "", "pn1-zero", good + "a",
		good[:10] + "1" + good[11:], " " + good + " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParsePeerID(s)
		if err != nil {
			if !errors.Is(err, ErrBadPeerID) || !id.IsZero() {
				t.Fatalf("ParsePeerID(%q) = %v, %v", s, id, err)
			}
			return
		}
		if id.IsZero() {
			t.Fatalf("ParsePeerID(%q) returned the zero id", s)
		}
		// Exactly one text form per id, up to ASCII case and surrounding
		// ASCII space.
		if want := strings.ToLower(strings.Trim(s, " \t\r\n")); id.String() != want {
			t.Fatalf("ParsePeerID(%q) accepted a non-canonical form of %s", s, id)
		}
		back, err := ParsePeerID(id.String())
		if err != nil || back != id {
			t.Fatalf("round trip of %s: %v, %v", id, back, err)
		}
	})
}
