package wire

import (
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"io"

	"github.com/flynn/noise"
)

// x25519 is the Noise DH function "25519" (X25519 over Curve25519), with the
// parsed private keys kept between calls.
//
// noise.DH25519 hands raw key bytes to curve25519.X25519, which parses the
// private key on every call, and parsing an X25519 private key computes its
// public key: one extra scalar multiplication per DH, three of the four in
// each side's half of an XX handshake. Here the local static key is parsed
// once per Local and the ephemeral once when it is generated, so each DH is
// one scalar multiplication. The results are identical to noise.DH25519.
//
// An x25519 belongs to one handshake: GenerateKeypair records the ephemeral
// key without locking. The static key may be shared by many.
type x25519 struct {
	static    *ecdh.PrivateKey
	staticRaw []byte // the bytes noise passes to DH for static

	eph    *ecdh.PrivateKey
	ephRaw []byte
}

var _ noise.DHFunc = (*x25519)(nil)

const x25519KeyLen = 32

// GenerateKeypair reads a private key from random (crypto/rand if nil) and
// remembers it as this handshake's ephemeral.
func (d *x25519) GenerateKeypair(random io.Reader) (noise.DHKey, error) {
	if random == nil {
		random = rand.Reader
	}
	var raw [x25519KeyLen]byte
	if _, err := io.ReadFull(random, raw[:]); err != nil {
		return noise.DHKey{}, fmt.Errorf("generating X25519 key: %w", err)
	}
	k, err := ecdh.X25519().NewPrivateKey(raw[:])
	if err != nil {
		return noise.DHKey{}, err
	}
	priv := k.Bytes()
	d.eph, d.ephRaw = k, priv
	return noise.DHKey{Private: priv, Public: k.PublicKey().Bytes()}, nil
}

// DH returns X25519(privkey, pubkey). It fails, like noise.DH25519, if the
// result is all zeros (pubkey is a low-order point).
func (d *x25519) DH(privkey, pubkey []byte) ([]byte, error) {
	k := d.lookup(privkey)
	if k == nil {
		var err error
		if k, err = ecdh.X25519().NewPrivateKey(privkey); err != nil {
			return nil, err
		}
	}
	pub, err := ecdh.X25519().NewPublicKey(pubkey)
	if err != nil {
		return nil, err
	}
	return k.ECDH(pub)
}

// lookup returns the parsed key whose raw bytes noise passed back to DH. noise
// passes the very slices it was given, so comparing the backing arrays is
// exact; any other key (none in XX) is parsed on the spot.
func (d *x25519) lookup(priv []byte) *ecdh.PrivateKey {
	switch {
	case len(priv) != x25519KeyLen:
		return nil
	case len(d.staticRaw) == x25519KeyLen && &priv[0] == &d.staticRaw[0]:
		return d.static
	case len(d.ephRaw) == x25519KeyLen && &priv[0] == &d.ephRaw[0]:
		return d.eph
	}
	return nil
}

func (*x25519) DHLen() int     { return x25519KeyLen }
func (*x25519) DHName() string { return "25519" }
