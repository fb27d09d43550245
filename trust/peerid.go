package trust

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// PeerIDPrefix starts the canonical text form of every PeerID. The "1" is the
// text-form version, so a future encoding can be told apart.
const PeerIDPrefix = "pn1"

const (
	peerIDChecksumLen = 4
	// peerIDTextLen is len("pn1") plus base32 of 32 key bytes and 4 checksum
	// bytes (36 bytes -> 58 characters, unpadded).
	peerIDTextLen = len(PeerIDPrefix) + 58
)

// peerIDEncoding is lowercase RFC 4648 base32 without padding: no characters
// that need quoting in HCL, shells or URLs, and case-insensitive to a reader.
var peerIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// PeerID is the address of a peer: its 32-byte Ed25519 public key. It is a
// comparable value type, usable as a map key; the zero value is "no peer" and
// is never a valid remote identity.
type PeerID struct {
	k [ed25519.PublicKeySize]byte
}

// PeerIDFromPublicKey returns the PeerID of an Ed25519 public key.
func PeerIDFromPublicKey(pub ed25519.PublicKey) (PeerID, error) {
	return PeerIDFromBytes(pub)
}

// PeerIDFromBytes returns the PeerID whose raw 32-byte key is b.
func PeerIDFromBytes(b []byte) (PeerID, error) {
	var id PeerID
	if len(b) != len(id.k) {
		return PeerID{}, fmt.Errorf("%w: key is %d bytes, want %d", ErrBadPeerID, len(b), len(id.k))
	}
	copy(id.k[:], b)
	if id.IsZero() {
		return PeerID{}, fmt.Errorf("%w: all-zero key", ErrBadPeerID)
	}
	return id, nil
}

// ParsePeerID parses the canonical text form ("pn1" followed by 58 base32
// characters). Upper case is accepted. The error says whether the prefix,
// length, characters or checksum is wrong; a checksum mismatch almost always
// means a mistyped character.
func ParsePeerID(s string) (PeerID, error) {
	var id PeerID
	return id, id.UnmarshalText([]byte(s))
}

// MustParsePeerID is ParsePeerID for constants in tests and examples; it
// panics on a malformed string.
func MustParsePeerID(s string) PeerID {
	id, err := ParsePeerID(s)
	if err != nil {
		panic(err)
	}
	return id
}

// IsZero reports whether id is the zero PeerID.
func (id PeerID) IsZero() bool { return id == PeerID{} }

// PublicKey returns a fresh copy of the Ed25519 public key; the caller owns it.
func (id PeerID) PublicKey() ed25519.PublicKey {
	k := make([]byte, len(id.k))
	copy(k, id.k[:])
	return k
}

// Bytes returns the raw 32-byte key as an array (a copy).
func (id PeerID) Bytes() [ed25519.PublicKeySize]byte { return id.k }

// Verify reports whether sig is id's valid Ed25519 signature of msg.
func (id PeerID) Verify(msg, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && ed25519.Verify(id.k[:], msg, sig)
}

// String returns the canonical text form, e.g. "pn1…". The zero PeerID
// prints as "pn1-zero" so it is obvious in logs and never parses.
func (id PeerID) String() string {
	if id.IsZero() {
		return PeerIDPrefix + "-zero"
	}
	b, _ := id.MarshalText()
	return string(b)
}

// Short returns a fingerprint for logs: the prefix and the first eight
// characters of the key. It is not unique and never accepted as input. The
// zero PeerID gives the same text as String.
func (id PeerID) Short() string {
	if id.IsZero() {
		return id.String()
	}
	return id.String()[:len(PeerIDPrefix)+8]
}

// MarshalText implements encoding.TextMarshaler with the canonical form.
func (id PeerID) MarshalText() ([]byte, error) {
	var raw [ed25519.PublicKeySize + peerIDChecksumLen]byte
	copy(raw[:], id.k[:])
	sum := peerIDChecksum(id.k[:])
	copy(raw[ed25519.PublicKeySize:], sum[:])
	out := make([]byte, len(PeerIDPrefix), peerIDTextLen)
	copy(out, PeerIDPrefix)
	return peerIDEncoding.AppendEncode(out, raw[:]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler. On error id is unchanged.
func (id *PeerID) UnmarshalText(text []byte) error {
	// ASCII only: strings.ToLower alone would map, e.g., the Kelvin sign
	// U+212A to 'k' and accept a second, look-alike form.
	s := strings.Trim(string(text), " \t\r\n")
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return fmt.Errorf("%w: non-ASCII character at position %d (allowed: a-z, 2-7)", ErrBadPeerID, i+1)
		}
	}
	s = strings.ToLower(s)
	if !strings.HasPrefix(s, PeerIDPrefix) {
		return fmt.Errorf("%w: %q does not start with %q", ErrBadPeerID, abbreviate(s), PeerIDPrefix)
	}
	if len(s) != peerIDTextLen {
		return fmt.Errorf("%w: %d characters, want %d", ErrBadPeerID, len(s), peerIDTextLen)
	}
	var raw [ed25519.PublicKeySize + peerIDChecksumLen]byte
	n, err := peerIDEncoding.Decode(raw[:], []byte(s[len(PeerIDPrefix):]))
	if err != nil || n != len(raw) {
		var ce base32.CorruptInputError
		if errors.As(err, &ce) && int(ce) >= 0 && len(PeerIDPrefix)+int(ce) < len(s) {
			return fmt.Errorf("%w: invalid character %q at position %d (allowed: a-z, 2-7)",
				ErrBadPeerID, s[len(PeerIDPrefix)+int(ce)], len(PeerIDPrefix)+int(ce)+1)
		}
		return fmt.Errorf("%w: malformed base32", ErrBadPeerID)
	}
	sum := peerIDChecksum(raw[:ed25519.PublicKeySize])
	if [peerIDChecksumLen]byte(raw[ed25519.PublicKeySize:]) != sum {
		return fmt.Errorf("%w: checksum mismatch (a character is probably mistyped)", ErrBadPeerID)
	}
	// 58 characters carry 290 bits for 288 bits of data; the decoder ignores
	// the last character's two spare bits, so without this check four texts
	// would name the same peer.
	if peerIDEncoding.EncodeToString(raw[:]) != s[len(PeerIDPrefix):] {
		return fmt.Errorf("%w: last character %q is not canonical (a character is probably mistyped)",
			ErrBadPeerID, s[len(s)-1])
	}
	parsed, err := PeerIDFromBytes(raw[:ed25519.PublicKeySize])
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}

// peerIDChecksum is the first four bytes of SHA-256 over a domain tag and the
// key: any single-character change to the text alters the checksum with
// probability 1-2^-32.
func peerIDChecksum(key []byte) [peerIDChecksumLen]byte {
	h := sha256.New()
	h.Write([]byte("peernet peer id checksum v1\x00"))
	h.Write(key)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return [peerIDChecksumLen]byte(sum[:peerIDChecksumLen])
}

func abbreviate(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}
